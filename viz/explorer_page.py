"""The Solara page of ``tme explore`` (:mod:`viz.explorer` draws its pictures and serves it).

:func:`Page` shows the :class:`viz.explorer.Source` of the environment: a run directory (:func:`RunPage`) or a
live model (:func:`LivePage`); both arrange the same :func:`SnapshotView` of a run directory. Importing this
module needs solara (the ``explore`` extra).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import solara

from abm import live as live_model
from viz.explorer import AXES, VIEWS, Source, colorings, png, render_png, section_figure, series_figures
from viz.rundir import RunData, open_run

#: The live controls besides the seed: ``--set`` key -> label.
CONTROLS = {"tumor.clones.0.cycle_time_h": "cycle time of the first clone (h)"}
#: ... and, for configs with T cells, these.
T_CELL_CONTROLS = {"immune.t_cells.kill_rate_per_h": "T-cell kill rate (1/h)",
                   "immune.t_cells.priming.expansion_per_h": "T-cell priming expansion (1/h)"}


def _pictures(run: RunData, index: int, color: str, view: str, axis: str, position: int) -> list[bytes]:
    """PNG images of snapshot ``index`` of ``run``: the section or 3-D render, then the marked time series."""
    snapshot = run.snapshots[index]
    if len(snapshot.shape) == 3 and view != "section":
        main = render_png(run, snapshot, color, view)
    else:
        main = png(section_figure(run, snapshot, color, axis, None if position < 0 else position))
    return [main, *(png(figure) for figure in series_figures(run, snapshot.time_h))]


@solara.component
def SnapshotView(run: RunData, index: int, on_index, version: object = None):
    """The time slider and the colouring, view and plane controls over ``run``'s snapshot ``index`` (clipped to the
    snapshots), with its pictures; ``on_index`` takes a new index; ``version`` changes when ``run`` has grown."""
    color, set_color = solara.use_state("clone")
    view, set_view = solara.use_state("section")
    axis, set_axis = solara.use_state("z")
    position, set_position = solara.use_state(-1)  # -1: through the tumor centre
    count = len(run.snapshots)
    index = min(max(index, 0), count - 1)
    snapshot = run.snapshots[index] if count else None
    choices = colorings(run, snapshot) if snapshot is not None else ["clone"]
    color = color if color in choices else "clone"
    three_d = len(run.shape) == 3
    extent = run.shape[AXES.index(axis)] if three_d else 1
    position = min(position, extent - 1)
    key = [run.path, version, index, color, view, axis, position]
    images = solara.use_memo(lambda: _pictures(run, index, color, view, axis, position) if count else [], key)
    if snapshot is None:
        solara.Warning(f"{run.path}: no snapshots (set time.snapshot_every_h in the config)")
        return
    with solara.Card("Snapshot"):
        solara.SliderInt(f"time: day {snapshot.time_h / 24:.2f} ({snapshot.time_h:g} h), snapshot {index + 1} of {count}",
                         value=index, min=0, max=count - 1, on_value=on_index, thumb_label=False)
        with solara.Row():
            solara.Select("colour by", value=color, values=choices, on_value=set_color)
            if three_d:
                solara.Select("view", value=view, values=list(VIEWS), on_value=set_view)
                if view == "section":
                    solara.Select("plane normal to", value=axis, values=list(AXES), on_value=set_axis)
        if three_d and view == "section":
            solara.SliderInt("plane position, voxels (-1: through the tumor centre)", value=position, min=-1,
                             max=extent - 1, on_value=set_position, thumb_label=False)
    with solara.Columns([1, 1]):
        solara.Image(images[0])
        with solara.Column():
            for image in images[1:]:
                solara.Image(image)


@solara.component
def RunPage(source: Source):
    """A run directory's snapshots, from the first."""
    run = solara.use_memo(lambda: open_run(source.run_dir), [source.run_dir])
    index, set_index = solara.use_state(0)
    solara.Title(f"tme explore {run.name}")
    solara.Markdown(f"### {run.name} ({run.status}, {len(run.snapshots)} snapshots)")
    SnapshotView(run, index, set_index)


def _dotted(config, key: str):
    """The config's value at the dotted ``key`` (as ``--set`` names it; a number indexes a list)."""
    for part in key.split("."):
        config = config[int(part)] if part.isdigit() else getattr(config, part)
    return config


def _controls(config) -> dict[str, tuple[str, float]]:
    """``--set`` key -> (label, the config's value) of each live control of ``config`` but the seed."""
    chosen = {**CONTROLS, **(T_CELL_CONTROLS if config.immune.t_cells.clones else {})}
    return {key: (label, float(_dotted(config, key))) for key, label in chosen.items()}


def _build(source: Source, overrides: list[str]):
    """``(LiveRun, "")`` of the source's config with ``overrides``, in a new folder of ``source.scratch``; or
    ``(None, message)`` where the overrides make a bad config."""
    try:
        config = live_model.load(source.config, [*source.overrides, *overrides])
    except live_model.REFUSED as exc:
        return None, str(exc)
    folder = Path(tempfile.mkdtemp(prefix="live-", dir=source.scratch))
    try:
        return live_model.LiveRun(config, folder), ""
    except live_model.REFUSED as exc:
        shutil.rmtree(folder, ignore_errors=True)
        return None, str(exc)


@solara.component
def LivePage(source: Source):
    """A live model of the source's config: play/pause, step, reset, the seed, the first clone's cycle time and (with
    T cells) two T-cell rates."""
    base = solara.use_memo(lambda: live_model.load(source.config, list(source.overrides)), [])
    controls = _controls(base)
    seed, set_seed = solara.use_state(base.seed)
    values, set_values = solara.use_state({key: value for key, (_, value) in controls.items()})
    generation, set_generation = solara.use_state(0)  # reset: a new model with the same controls
    playing, set_playing = solara.use_state(False)
    steps, set_steps = solara.use_state(0)
    failure, set_failure = solara.use_state("")
    index, set_index = solara.use_state(0)
    overrides = [f"seed={seed}", *(f"{key}={value!r}" for key, value in values.items())]
    live, problem = solara.use_memo(lambda: _build(source, overrides), [generation, *overrides])

    def forget():  # a model's folder goes when a new model replaces it, and when the page closes
        def cleanup():
            if live is not None:
                live.close()
                shutil.rmtree(live.folder, ignore_errors=True)
        return cleanup

    solara.use_effect(forget, [live])

    def step() -> bool:
        """Advance to the next record; whether the model can go on."""
        try:
            live.advance()
        except live_model.FAILED as exc:  # shown; the model stops (its records so far stay)
            set_failure(f"the model failed at {live_model.describe(live.model, exc)}")
            return False
        set_steps(live.model.steps)
        set_index(live.model.steps)  # past the last snapshot: the view shows the latest
        return not live.done

    def play(cancel):
        while playing and live is not None and not cancel.is_set() and step():
            pass
        set_playing(False)

    def reset():
        set_playing(False)
        set_failure("")
        set_index(0)
        set_steps(0)
        set_generation(generation + 1)

    solara.use_thread(play, [playing, live], intrusive_cancel=False)  # a step is never cut short
    solara.Title(f"tme explore {Path(source.config).name}")
    stopped = live is None or live.done or bool(failure)
    when = f"day {live.model.time_h / 24:.2f} of {live.model.config.time.duration_days:g}" if live is not None else "no model"
    solara.Markdown(f"### {source.config}, live: {when}")
    with solara.Card("Model"):
        with solara.Row():
            solara.Button("pause" if playing else "play", on_click=lambda: set_playing(not playing), disabled=stopped)
            solara.Button("step", on_click=step, disabled=playing or stopped)
            solara.Button("reset", on_click=reset, disabled=playing)
            solara.InputInt("seed", value=seed, on_value=set_seed, disabled=playing)
        with solara.Row():
            for key, (label, _) in controls.items():  # a value the config rejects is shown as its error
                solara.InputFloat(label, value=values[key], disabled=playing,
                                  on_value=lambda value, key=key: set_values({**values, key: value}))
        if problem or failure:
            solara.Error(problem or failure)
    if live is not None:
        SnapshotView(open_run(live.folder), index, set_index, (live.folder, steps))


@solara.component
def Page():
    """The explorer page of the :class:`viz.explorer.Source` in the environment."""
    source = Source.from_environment()
    if source.run_dir is not None:
        RunPage(source)
    else:
        LivePage(source)
