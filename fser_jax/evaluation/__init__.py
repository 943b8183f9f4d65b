"""What a run's predictions are worth: metrics (`metrics`), calibration
(`calibration`), how familiar a recording is (`familiarity`), plots
(`plots`) and the linear baseline classifier with its cross-validation
(`linear`). Imports `frontend` and lower.
"""
