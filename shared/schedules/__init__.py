"""shared/schedules"""
