"""Automation: landing batches, sensors, schedules, alerts and rollback around pure decisions."""
