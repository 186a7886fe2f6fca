from dmjob.cli import main

main()
