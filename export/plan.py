"""The bundle's plan: how its graphs make an image, written as data into the manifest.

Every runtime (``lrf-run``, ``lrf-native`` and the Android JNI layer on it, the web page, the
Swift package) executes this plan and nothing else, so a new way of sampling is a new plan, not
new code in five languages. Generation, image-to-image and inpainting are one plan. It has five parts:

- ``inputs``: what a user gives, each with its default: ``class`` (an index into ``class_names``),
  ``seed``, ``steps`` (a key of ``sampler.schedules``), ``number``s such as ``cfg``, ``strength``
  (in [0, 1]), and the tensors ``image`` (8-bit RGB, the ``shape`` given, default all 0) and
  ``mask`` (0 keep / 1 regenerate, default all 1). A runtime refuses a strength or a mask
  without an image.
- ``start``: the initial state, by name: ``{"noise": "seed"}`` (the portable generator) or
  ``{"fill": v}``, each with its ``shape``.
- ``edit`` (step bundles): run once, only when the user gives an image, on the start state; its
  outputs (``next``) replace states (the encoded image, the noised start latent, the mask on the
  latent grid).
- ``loop``: the graph run each iteration, where each of its inputs comes from (``{"state": s}``,
  ``{"input": i}``, ``{"schedule": "t" | "dt"}`` of the current interval) and which outputs
  replace which states (``next``, in name order: the order every runtime stacks them in for the
  self-test; the others carry over). A family that carries state between steps (MicroForge's
  ``plan``) adds it here: the step's input ``X`` fed from state ``X``, its output ``next_X`` setting
  it, the state starting as zeros; so every runtime carries it with no code of its own. ``repeat`` is ``{"schedule": "steps"}``
  (one iteration per schedule interval), with ``"strength": "strength"`` starting at interval
  ``k = N - floor(N * strength + 0.5)`` (what ``{"schedule": "t_start"}`` feeds: ``t_k``), or
  ``{"count": n}``;
- ``end``: the decoder graph, its feeds, and the output that is the result (8-bit RGB pixels).

Feeds are scalars or arrays; a runtime casts each to the dtype and shape the graph declares. With
the defaults (no image, mask of ones) the edit graph never runs and the blends in the step and the
decoder are the identity, so plain generation is what it was.
"""

from __future__ import annotations

from .graphs import GraphSpec

# Where each graph input of today's families comes from. A graph input missing here is an error
# at export time: a family with a new input (conditioning tokens) adds its source here.
SOURCES: dict[str, dict] = {
    "latent": {"state": "latent"},
    "noise": {"state": "noise"},
    "known": {"state": "known"},
    "latent_mask": {"state": "latent_mask"},
    "t": {"schedule": "t"},
    "dt": {"schedule": "dt"},
    "t_start": {"schedule": "t_start"},
    "class_id": {"input": "class"},
    "cfg": {"input": "cfg"},
    "image": {"input": "image"},
    "mask": {"input": "mask"},
}
# How each state starts before any edit: noise and latent from the seed (the same values), the
# known latent zero and the latent mask one, so that the step's blend is the identity.
START: dict[str, dict] = {"latent": {"noise": "seed"}, "noise": {"noise": "seed"}, "known": {"fill": 0.0},
                          "latent_mask": {"fill": 1.0}}


def feeds_for(spec: GraphSpec, sources: dict[str, dict] = SOURCES) -> dict[str, dict]:
    missing = [i.name for i in spec.inputs if i.name not in sources]
    if missing:
        raise ValueError(f"graph {spec.kind} takes {missing}, which the plan cannot feed; add their sources to SOURCES")
    return {i.name: sources[i.name] for i in spec.inputs}


def carried_states(loop_spec: GraphSpec) -> list[str]:
    """The family's carried state (MicroForge's ``plan``): each output ``next_X`` after the latent
    feeds input ``X`` of the next iteration; before the first it is zero (the model's own start)."""
    return [o.name.removeprefix("next_") for o in loop_spec.outputs[1:]]


def build_plan(loop_spec: GraphSpec, decoder: GraphSpec, encoder: GraphSpec | None, steps: int, cfg: float) -> dict:
    """The plan of a bundle whose loop graph is ``loop_spec`` (``step``: once per interval of the
    chosen schedule; ``fused``: the whole schedule in one call), whose end is ``decoder`` and
    whose edits start with ``encoder`` (step bundles only: a fused graph has its schedule baked in)."""
    latent_out = loop_spec.outputs[0]
    carried = carried_states(loop_spec)
    sources = {**SOURCES, **{name: {"state": name} for name in carried}}
    start = {**START, **{name: {"fill": 0.0} for name in carried}}
    stepped = loop_spec.kind == "step"
    graphs = [loop_spec, decoder] + ([encoder] if stepped else [])
    feeds = {g.kind: feeds_for(g, sources) for g in graphs}
    used = [src for f in feeds.values() for src in f.values()]
    shapes = {src["state"]: list(i.shape) for g in graphs for i in g.inputs if "state" in (src := sources[i.name])}
    inputs = [{"name": "class", "kind": "class", "default": 0}, {"name": "seed", "kind": "seed", "default": 0},
              {"name": "steps", "kind": "steps", "default": steps}]
    if {"input": "cfg"} in used:
        inputs.append({"name": "cfg", "kind": "number", "default": cfg})
    for name, default in (("image", 0), ("mask", 1)):
        if {"input": name} in used:
            shape = next(list(i.shape) for g in graphs for i in g.inputs if sources[i.name] == {"input": name})
            inputs.append({"name": name, "kind": name, "default": default, "shape": shape})
    plan = {
        "inputs": inputs,
        "start": {name: {**start[name], "shape": shape} for name, shape in shapes.items()},
        # In name order: every runtime stacks the loop's states in this order for the self-test.
        "loop": {"graph": loop_spec.kind, "repeat": {"count": 1}, "feeds": feeds[loop_spec.kind],
                 "next": dict(sorted({"latent": latent_out.name, **{n: f"next_{n}" for n in carried}}.items()))},
        "end": {"graph": decoder.kind, "feeds": feeds[decoder.kind], "output": decoder.outputs[0].name},
    }
    if stepped:
        inputs.append({"name": "strength", "kind": "strength", "default": 1.0})
        plan["loop"]["repeat"] = {"schedule": "steps", "strength": "strength"}
        plan["edit"] = {"when": "image", "graph": encoder.kind, "feeds": feeds[encoder.kind],
                        "next": {o.name: o.name for o in encoder.outputs}}
    return plan
