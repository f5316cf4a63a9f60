"""Running an nbgrader course of labkit labs: release, autograde, feedback, export."""

from labkit.course.instructor import Course, CourseError, GradingOutcome

__all__ = ["Course", "CourseError", "GradingOutcome"]
