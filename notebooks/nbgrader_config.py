"""nbgrader configuration of the labkit Paxos course (run nbgrader from this folder,
or use `labkit course ...`, which does)."""

import os

c = get_config()  # noqa: F821  (provided by nbgrader)

c.CourseDirectory.course_id = "labkit-paxos"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))

# Keep the student's own module at autograde time (nbgrader would otherwise put
# the blank stub from source/ back over it).
c.Autograde.exclude_overwriting = {"paxos": ["paxos_server.py"], "tour": ["ping_server.py"]}

# Scores come from labkit's judge, not from the executed cells (see labkit course autograde),
# so this limit costs no points; it only bounds "nbgrader validate" runs of the public tests.
c.Execute.timeout = 900
# Code that swallows the interrupt must not fail the whole submission.
c.Execute.raise_on_iopub_timeout = False
c.Execute.kernel_name = "python3"

# Output floods from student code are cut, not fatal.
c.LimitOutput.max_lines = 1000
c.LimitOutput.max_traceback = 100

c.Exchange.root = os.path.join(os.path.dirname(c.CourseDirectory.root), "exchange")
