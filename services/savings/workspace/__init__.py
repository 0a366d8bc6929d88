"""The commissioner's workspace: the partnership's working views, the joint-committee report
and the Green Book option appraisal (docs/workspace.md)."""
