"""scheduler: execution order, memory profile and arena plan."""
from onnx2mcu.scheduler.schedule import METHODS, Schedule, schedule

__all__ = ["METHODS", "Schedule", "schedule"]
