"""shared/dmss"""
