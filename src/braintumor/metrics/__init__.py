"""Pure metric functions of arrays: classification figures and calibration (temperature, ECE).

They sit below training, which fits the temperature and reports validation figures with them, and
below evaluation, which adds bootstrap intervals, plots and reports. Nothing is imported here.
"""
