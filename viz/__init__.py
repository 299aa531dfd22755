"""Figures and 3-D renders made from run directories (optional extra ``viz``)."""
