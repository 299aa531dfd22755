"""Figures and 3-D renders made from run directories (optional extra ``viz``).

Modules: :mod:`viz.rundir` reads run directories; :mod:`viz.palette` and
:mod:`viz.legend` hold the colours and legends every figure shares;
:mod:`viz.render` renders snapshots with pyvista off-screen;
:mod:`viz.export` writes VTK files for ParaView; :mod:`viz.muller` lays out
the bands of Muller plots; :mod:`viz.figures` draws matplotlib figures;
:mod:`viz.comparedir` reads ``tme compare`` directories and
:mod:`viz.comparison` draws their figures, with the dosing, line and
response tracks of :mod:`viz.treatment`; :mod:`viz.report` gathers them in
a Markdown report; :mod:`viz.commands` backs ``tme render|export|plot|report``. Importing ``viz`` imports neither
matplotlib nor pyvista: each is imported, through :mod:`viz.optional`, only
when a figure is asked for.
"""
