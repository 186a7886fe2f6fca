"""shared/platform"""
