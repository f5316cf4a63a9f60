"""Running an nbgrader course of labkit labs: release, autograde, feedback, export."""

from labkit.course.coordinator import GradingOutcome
from labkit.course.instructor import Course, CourseError

__all__ = ["Course", "CourseError", "GradingOutcome"]
