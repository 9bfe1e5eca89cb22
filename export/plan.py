"""The bundle's plan: how its graphs make an image, written as data into the manifest.

Every runtime (``lrf-run``, ``lrf-native`` and the Android JNI layer on it, the web page, the
Swift package) executes this plan and nothing else, so a new way of sampling (an encoded start
image, a masked step, a state carried between steps) is a new plan, not new code in five
languages. A plan has four parts:

- ``inputs``: what a user gives (``class``: an index into ``class_names``; ``seed``; ``steps``:
  a key of ``sampler.schedules``; ``number``s such as ``cfg``), each with its default;
- ``start``: the initial state, by name (today: ``{"noise": "seed"}``, the portable generator);
- ``loop``: the graph run each iteration, where each of its inputs comes from (``{"state": s}``,
  ``{"input": i}``, ``{"schedule": "t" | "dt"}`` of the current interval) and which outputs
  become the next state (``next``); ``repeat`` is ``{"schedule": "steps"}`` (one iteration per
  schedule interval) or ``{"count": n}``;
- ``end``: the decoder graph, its feeds, and the output that is the result (8-bit RGB pixels).

Feeds are scalars or arrays; a runtime casts each to the dtype and shape the graph declares.
"""

from __future__ import annotations

from .graphs import GraphSpec

# Where each graph input of today's families comes from. A graph input missing here is an error
# at export time: a family with a new input (conditioning tokens, a mask) adds its source here.
SOURCES: dict[str, dict] = {
    "latent": {"state": "latent"},
    "noise": {"state": "latent"},
    "t": {"schedule": "t"},
    "dt": {"schedule": "dt"},
    "class_id": {"input": "class"},
    "cfg": {"input": "cfg"},
}


def feeds_for(spec: GraphSpec) -> dict[str, dict]:
    missing = [i.name for i in spec.inputs if i.name not in SOURCES]
    if missing:
        raise ValueError(f"graph {spec.kind} takes {missing}, which the plan cannot feed; add their sources to SOURCES")
    return {i.name: SOURCES[i.name] for i in spec.inputs}


def build_plan(loop_spec: GraphSpec, decoder: GraphSpec, steps: int, cfg: float) -> dict:
    """The plan of a bundle whose loop graph is ``loop_spec`` (``step``: once per interval of the
    chosen schedule; ``fused``: the whole schedule in one call) and whose end is ``decoder``."""
    (state_out,) = loop_spec.outputs
    feeds = feeds_for(loop_spec)
    inputs = [{"name": "class", "kind": "class", "default": 0}, {"name": "seed", "kind": "seed", "default": 0},
              {"name": "steps", "kind": "steps", "default": steps}]
    if any(src == {"input": "cfg"} for src in feeds.values()):
        inputs.append({"name": "cfg", "kind": "number", "default": cfg})
    start_shape = next(i.shape for i in loop_spec.inputs if feeds[i.name] == {"state": "latent"})
    repeat = {"schedule": "steps"} if loop_spec.kind == "step" else {"count": 1}
    return {
        "inputs": inputs,
        "start": {"latent": {"noise": "seed", "shape": list(start_shape)}},
        "loop": {"graph": loop_spec.kind, "repeat": repeat, "feeds": feeds, "next": {"latent": state_out.name}},
        "end": {"graph": decoder.kind, "feeds": feeds_for(decoder), "output": decoder.outputs[0].name},
    }

