"""Render gymnax evaluation episodes to RGB frames and animated GIFs (Pillow only).

Input is what a jitted evaluation scan produces: the *unbatched* env states of one episode,
stacked along a leading time axis T (any pytree of arrays, on device or host).

    frames = render_episode("CartPole-v1", env, env_params, states, num_steps=episode_length)
    save_gif(frames, "cartpole.gif", fps=30)

Each environment name maps to one renderer in `_RENDERERS`; `supported(name)` says which:

* "classic-control drawing": CartPole, Acrobot, MountainCar(Continuous), Pendulum drawn from the
  physical state fields (cart position and pole angle, link angles, car position on the hill,
  rod angle).
* "MinAtar palette": the (10, 10, C) observation, each cell coloured by its highest-index active
  channel, 20x20 px per cell.
* "grid": FrozenLake (map tiles and agent), FourRooms and MetaMaze (walls, agent, goal), and any
  other env whose observation is an image-like (H, W) or (H, W, C) array.
* "observation bars": everything else, the flattened observation as labelled horizontal bars.

Every frame gets a caption strip on top ("<env name>  t=<state.time>") unless `caption=False`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw

WIDTH, HEIGHT = 400, 300        # classic-control canvas
CAPTION_HEIGHT = 16             # rows added on top of each frame by the caption strip
MINATAR_CELL = 20               # px per MinAtar cell: 10x10 grid -> 200x200
MIN_GRID_WIDTH = 200            # image-like observations are upscaled to at least this width
MAX_BARS = 64                   # bars drawn for a flat observation (the rest are summarised)

BACKGROUND = (18, 18, 28)
_INK = (230, 230, 230)
_DIM = (110, 110, 125)
_PALETTE = np.array([(230, 80, 80), (80, 200, 120), (90, 140, 240), (240, 200, 70),
                     (200, 100, 220), (80, 210, 220), (240, 140, 60), (175, 175, 175),
                     (150, 230, 90), (250, 120, 170)], np.uint8)

Renderer = Callable[[Any, Any, Any, Any], np.ndarray]   # (env, params, state, obs)


# ----------------------------------------------------------------------------- small helpers

def _f(x) -> float:
    """A scalar state field (0-d or one-element array, on device or host) as a Python float."""
    return float(np.asarray(x).reshape(-1)[0])


def _canvas(width: int = WIDTH, height: int = HEIGHT) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (width, height), BACKGROUND)
    return image, ImageDraw.Draw(image)


def _disc(draw: ImageDraw.ImageDraw, center, radius: float, fill) -> None:
    x, y = center
    draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=fill)


def _rotate(dx: float, dy: float, angle: float) -> tuple[float, float]:
    c, s = math.cos(angle), math.sin(angle)
    return dx * c - dy * s, dx * s + dy * c


def _upscale(rgb: np.ndarray, scale: int) -> np.ndarray:
    """(H, W, 3) -> (H*scale, W*scale, 3), nearest neighbour."""
    return np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)


def _observe(env, env_params, state):
    """The observation of `state`, whatever observation hook `env` has (traceable).

    gymnax 1.0.1 envs expose `observe(key, state, action, params)`; older ones and gymnax-style
    objects only `get_obs`, with `(state)`, `(state, params)` or a required `key` (UmbrellaChain's
    random distractor bits, drawn here with a fixed key).
    """
    key = jax.random.key(0)
    attempts = (lambda: env.observe(key, state, None, env_params),
                lambda: env.get_obs(state, params=env_params, key=key),
                lambda: env.get_obs(state, env_params),
                lambda: env.get_obs(state))
    errors = []
    for attempt in attempts:
        try:
            return attempt()
        except (AttributeError, TypeError, NotImplementedError) as err:
            errors.append(err)
    raise TypeError(f"cannot compute an observation from the state of {type(env).__name__}: "
                    f"neither observe(key, state, action, params) nor get_obs(state, ...) "
                    f"worked") from errors[0]


def _observation(env, env_params, state, obs=None) -> np.ndarray:
    """`obs` as a host array if given (precomputed by `render_episode`), else computed."""
    if obs is None:
        obs = _observe(env, env_params, jax.tree.map(jnp.asarray, state))
    return np.asarray(obs)


# ----------------------------------------------------------------------- classic control

def _draw_cartpole(env, params, state, obs=None) -> np.ndarray:
    """Track, cart at `state.x`, pole at angle `state.theta` from vertical (clockwise positive)."""
    image, draw = _canvas()
    scale = WIDTH / (2.4 * getattr(params, "x_threshold", 2.4))     # px per metre
    track_y = HEIGHT * 0.7
    cart_x = WIDTH / 2 + _f(state.x) * scale
    pole = 2 * getattr(params, "length", 0.5) * scale
    theta = _f(state.theta)
    draw.line([(0, track_y), (WIDTH, track_y)], fill=_DIM, width=2)
    draw.rectangle([cart_x - 0.25 * scale, track_y - 0.3 * scale,
                    cart_x + 0.25 * scale, track_y], fill=(90, 140, 240))
    axle = (cart_x, track_y - 0.3 * scale)
    tip = (axle[0] + pole * math.sin(theta), axle[1] - pole * math.cos(theta))
    draw.line([axle, tip], fill=(220, 170, 100), width=8)
    _disc(draw, axle, 5, _INK)
    return np.asarray(image)


def _draw_acrobot(env, params, state, obs=None) -> np.ndarray:
    """Two links hanging from a pivot (angle 0 = straight down), and the height to swing above."""
    image, draw = _canvas()
    l1, l2 = getattr(params, "link_length_1", 1.0), getattr(params, "link_length_2", 1.0)
    scale = min(WIDTH, HEIGHT) / (2.2 * (l1 + l2))
    pivot = (WIDTH / 2, HEIGHT / 2)
    a1, a12 = _f(state.joint_angle1), _f(state.joint_angle1) + _f(state.joint_angle2)
    elbow = (pivot[0] + l1 * scale * math.sin(a1), pivot[1] + l1 * scale * math.cos(a1))
    tip = (elbow[0] + l2 * scale * math.sin(a12), elbow[1] + l2 * scale * math.cos(a12))
    goal_y = pivot[1] - l1 * scale        # the tip must rise above this line
    draw.line([(0, goal_y), (WIDTH, goal_y)], fill=_DIM, width=1)
    draw.line([pivot, elbow], fill=(90, 140, 240), width=10)
    draw.line([elbow, tip], fill=(80, 200, 120), width=10)
    for joint in (pivot, elbow):
        _disc(draw, joint, 6, _INK)
    return np.asarray(image)


def _draw_mountain_car(env, params, state, obs=None) -> np.ndarray:
    """The hill y = sin(3x), the car at `state.position` tilted with the slope, the goal flag."""
    image, draw = _canvas()
    lo, hi = getattr(params, "min_position", -1.2), getattr(params, "max_position", 0.6)
    margin, top = 20, 60
    sx = (WIDTH - 2 * margin) / (hi - lo)
    sy = (HEIGHT - margin - top) / 2

    def to_px(x: float) -> tuple[float, float]:
        return margin + (x - lo) * sx, top + (1 - math.sin(3 * x)) * sy

    hill = [to_px(x) for x in np.linspace(lo, hi, 120)]
    draw.polygon(hill + [(WIDTH - margin, HEIGHT), (margin, HEIGHT)], fill=(60, 80, 60))
    draw.line(hill, fill=(120, 170, 110), width=3)
    flag_x, flag_y = to_px(getattr(params, "goal_position", 0.5))
    draw.line([(flag_x, flag_y), (flag_x, flag_y - 40)], fill=_INK, width=2)
    draw.polygon([(flag_x, flag_y - 40), (flag_x + 22, flag_y - 33), (flag_x, flag_y - 26)],
                 fill=(240, 200, 70))
    position = _f(state.position)
    base = to_px(position)
    angle = math.atan2(-3 * math.cos(3 * position) * sy, sx)   # slope in pixel coordinates
    body = [_rotate(dx, dy, angle) for dx, dy in ((-20, -18), (20, -18), (20, -6), (-20, -6))]
    draw.polygon([(base[0] + dx, base[1] + dy) for dx, dy in body], fill=(230, 80, 80))
    for wheel in (-12, 12):
        dx, dy = _rotate(wheel, -5, angle)
        _disc(draw, (base[0] + dx, base[1] + dy), 5, _INK)
    return np.asarray(image)


def _draw_pendulum(env, params, state, obs=None) -> np.ndarray:
    """Rod at `state.theta` (0 = up, counter-clockwise positive) and the last torque as a bar."""
    image, draw = _canvas()
    pivot, rod = (WIDTH / 2, HEIGHT / 2 - 10), 0.35 * HEIGHT
    theta = _f(state.theta)
    tip = (pivot[0] - rod * math.sin(theta), pivot[1] - rod * math.cos(theta))
    draw.line([pivot, tip], fill=(220, 90, 90), width=14)
    _disc(draw, tip, 7, (220, 90, 90))
    _disc(draw, pivot, 5, _INK)
    torque = _f(state.last_u) / getattr(params, "max_torque", 2.0)
    bar_y = HEIGHT - 18
    draw.line([(WIDTH / 2 - 100, bar_y), (WIDTH / 2 + 100, bar_y)], fill=_DIM, width=1)
    draw.rectangle([min(WIDTH / 2, WIDTH / 2 - 100 * torque), bar_y - 5,
                    max(WIDTH / 2, WIDTH / 2 - 100 * torque), bar_y + 5], fill=(240, 200, 70))
    return np.asarray(image)


# ------------------------------------------------------------------------------ grids

def _channel_colours(obs: np.ndarray) -> np.ndarray:
    """(H, W, C) channels -> (H, W, 3) uint8: each cell in the colour of its highest-index
    active (> 0) channel, the background where none is active."""
    active = obs > 0
    top = obs.shape[-1] - 1 - np.argmax(active[..., ::-1], axis=-1)
    colours = _PALETTE[top % len(_PALETTE)]
    return np.where(active.any(axis=-1, keepdims=True), colours,
                    np.array(BACKGROUND, np.uint8)).astype(np.uint8)


def _draw_minatar(env, params, state, obs=None) -> np.ndarray:
    """MinAtar's (10, 10, C) observation, palette per channel, MINATAR_CELL px per cell."""
    obs = _observation(env, params, state, obs)
    if obs.ndim != 3:
        return _draw_observation(env, params, state, obs)
    return _upscale(_channel_colours(obs), MINATAR_CELL)


def _grid_rgb(obs: np.ndarray) -> np.ndarray:
    """An (H, W) or (H, W, C) observation as an (H, W, 3) uint8 image, one pixel per cell:
    floats in [0, 1] with 3 channels as RGB, one channel as grey levels, else channel colours."""
    obs = obs.astype(np.float64)
    if obs.ndim == 3 and obs.shape[-1] == 1:
        obs = obs[..., 0]
    in_unit = obs.size > 0 and np.nanmin(obs) >= 0 and np.nanmax(obs) <= 1
    if obs.ndim == 3 and obs.shape[-1] == 3 and in_unit:
        return (obs * 255).round().astype(np.uint8)
    if obs.ndim == 3:
        return _channel_colours(obs)
    lo, hi = (0.0, 1.0) if in_unit else (np.nanmin(obs), np.nanmax(obs))
    grey = np.nan_to_num((obs - lo) / (hi - lo)) if hi > lo else np.zeros_like(obs)
    return np.repeat((grey * 255).round().astype(np.uint8)[..., None], 3, axis=-1)


def _is_grid(shape: Sequence[int]) -> bool:
    """Image-like: (H, W) or (H, W, C) with H, W >= 2 (a (1, 1) observation is a scalar)."""
    return len(shape) in (2, 3) and shape[0] >= 2 and shape[1] >= 2


def _grid_image(obs: np.ndarray) -> np.ndarray:
    rows, cols = obs.shape[:2]
    scale = max(1, min(math.ceil(MIN_GRID_WIDTH / cols), 800 // rows))
    return _upscale(_grid_rgb(obs), scale)


def _draw_frozen_lake(env, params, state, obs=None) -> np.ndarray:
    """FrozenLake's map (start, ice, holes, goal) from `env.desc`, the agent at `state.position`."""
    desc = getattr(env, "desc", None)
    if desc is None:
        return _draw_observation(env, params, state, obs)
    tiles = np.array([(120, 170, 230), (200, 225, 245), (20, 40, 90), (240, 200, 70)], np.uint8)
    desc = np.asarray(desc)
    rows, cols = desc.shape
    cell = max(8, math.ceil(MIN_GRID_WIDTH / cols))
    image = Image.fromarray(_upscale(tiles[desc], cell))
    row, col = divmod(int(np.asarray(state.position)), cols)
    _disc(ImageDraw.Draw(image), ((col + 0.5) * cell, (row + 0.5) * cell), cell / 3, (230, 80, 80))
    return np.asarray(image)


def _draw_maze(env, params, state, obs=None) -> np.ndarray:
    """FourRooms / MetaMaze: walls from `env.occupied_map`, agent `state.pos` and goal
    `state.goal` as (row, col)."""
    walls = getattr(env, "occupied_map", None)
    if walls is None:
        return _draw_observation(env, params, state, obs)
    walls = np.asarray(walls) > 0
    grid = np.where(walls[..., None], np.array(_DIM, np.uint8), np.array((225, 225, 225), np.uint8))
    for field, colour in (("goal", (240, 200, 70)), ("pos", (230, 80, 80))):
        row, col = (int(v) for v in np.asarray(getattr(state, field)).reshape(-1)[:2])
        grid[row, col] = colour
    return _upscale(grid.astype(np.uint8), max(1, math.ceil(MIN_GRID_WIDTH / walls.shape[1])))


# ------------------------------------------------------------------------- fallback

def _bars_image(values: np.ndarray) -> np.ndarray:
    """A flat vector as labelled horizontal bars around a zero line, 400 px wide; values in
    [-1, 1] keep a fixed scale, larger ones are scaled to the largest magnitude."""
    values = np.asarray(values, np.float64).reshape(-1)
    shown = values[:MAX_BARS]
    row = max(6, min(22, 480 // max(len(shown), 1)))
    label_w, margin = 120, 8
    image, draw = _canvas(WIDTH, max(64, 2 * margin + row * (len(shown) + 1)))
    finite = np.abs(shown[np.isfinite(shown)])
    bound = max(1.0, float(finite.max(initial=0.0)))
    zero, half = (label_w + WIDTH - margin) / 2, (WIDTH - margin - label_w) / 2
    draw.line([(zero, margin), (zero, margin + row * len(shown))], fill=_DIM, width=1)
    for i, v in enumerate(shown):
        y = margin + i * row
        end = zero + (v / bound * half if np.isfinite(v) else 0.0)
        draw.rectangle([min(zero, end), y + 1, max(zero, end), y + row - 2],
                       fill=(80, 200, 120) if v >= 0 else (230, 80, 80))
        if row >= 12:
            draw.text((6, y + (row - 11) / 2), f"[{i}] {v:+.4g}", fill=_INK)
    note = f"{len(values)} values" + (f", first {MAX_BARS} shown" if len(values) > MAX_BARS else "")
    draw.text((6, margin + row * len(shown)), note, fill=_DIM)
    return np.asarray(image)


def _draw_observation(env, params, state, obs=None) -> np.ndarray:
    """Generic: an image-like observation as a grid, anything else as bars."""
    obs = _observation(env, params, state, obs)
    return _grid_image(obs) if _is_grid(obs.shape) else _bars_image(obs)


# ------------------------------------------------------------------------ public API

_CLASSIC, _MINATAR, _GRID, _BARS = ("classic-control drawing", "MinAtar palette", "grid",
                                    "observation bars")
_RENDERERS: dict[str, tuple[str, Renderer]] = {
    "CartPole-v1": (_CLASSIC, _draw_cartpole),
    "Acrobot-v1": (_CLASSIC, _draw_acrobot),
    "MountainCar-v0": (_CLASSIC, _draw_mountain_car),
    "MountainCarContinuous-v0": (_CLASSIC, _draw_mountain_car),
    "Pendulum-v1": (_CLASSIC, _draw_pendulum),
    "Asterix-MinAtar": (_MINATAR, _draw_minatar),
    "Breakout-MinAtar": (_MINATAR, _draw_minatar),
    "Freeway-MinAtar": (_MINATAR, _draw_minatar),
    "Seaquest-MinAtar": (_MINATAR, _draw_minatar),
    "SpaceInvaders-MinAtar": (_MINATAR, _draw_minatar),
    "FrozenLake-misc": (_GRID, _draw_frozen_lake),
    "FourRooms-misc": (_GRID, _draw_maze),
    "MetaMaze-misc": (_GRID, _draw_maze),
}


def supported(env_name: str, env=None, env_params=None) -> str:
    """Which renderer draws `env_name`: "classic-control drawing", "MinAtar palette", "grid" or
    "observation bars".

    Environments without a dedicated renderer get "grid" when their observation space has an
    image-like shape (H, W) or (H, W, C) and "observation bars" otherwise; for those the env is
    made with `gymnax.make(env_name)` unless `env` (and `env_params`) are given. Raises
    ValueError for an unknown name without `env`.
    """
    if env_name in _RENDERERS:
        return _RENDERERS[env_name][0]
    if env is None:
        import gymnax  # deferred: importing gymnax runs JAX computations

        if env_name not in gymnax.registered_envs:
            raise ValueError(f"unknown environment {env_name!r}; pass `env` to describe a "
                             f"gymnax-style environment that is not registered")
        env, env_params = gymnax.make(env_name)
    if env_params is None:
        env_params = getattr(env, "default_params", None)
    shape = tuple(getattr(env.observation_space(env_params), "shape", ()) or ())
    return _GRID if _is_grid(shape) else _BARS


def _renderer(env_name: str) -> Renderer:
    return _RENDERERS.get(env_name, (_BARS, _draw_observation))[1]


def render_frame(env_name: str, env, env_params, state, caption: bool = True,
                 observation=None) -> np.ndarray:
    """One RGB frame of one *unbatched* env state (leaves are scalars / per-env arrays, on device
    or host).

    Returns an (H, W, 3) uint8 array; H, W depend on the renderer (`supported(env_name)`):
    classic control 300x400, MinAtar 200x200, grids about 200 px wide, bars 400 px wide, each
    plus, with `caption`, a CAPTION_HEIGHT-px strip "<env_name>  t=<state.time>" on top.
    `observation`: the observation of `state` if already computed (`render_episode` computes all
    of them in one jitted call); otherwise the renderers that need it compute it.
    """
    frame = _renderer(env_name)(env, env_params, state, observation)
    frame = np.ascontiguousarray(frame, dtype=np.uint8)
    return _with_caption(frame, env_name, state) if caption else frame


def _with_caption(frame: np.ndarray, env_name: str, state) -> np.ndarray:
    image, draw = _canvas(frame.shape[1], frame.shape[0] + CAPTION_HEIGHT)
    image.paste(Image.fromarray(frame), (0, CAPTION_HEIGHT))
    time = getattr(state, "time", None)
    text = env_name if time is None else f"{env_name}  t={int(np.asarray(time))}"
    draw.text((4, 2), text, fill=_INK)
    return np.asarray(image)


def _observations(env_name: str, env, env_params, states, num_steps: int):
    """(num_steps, ...) host observations of the stacked `states`, from one jitted, vmapped call,
    or None when the renderer draws from the state alone (or there is nothing to observe)."""
    if num_steps == 0 or _renderer(env_name) not in (_draw_minatar, _draw_observation):
        return None
    observe = jax.jit(jax.vmap(lambda state: _observe(env, env_params, state)))
    return np.asarray(observe(states))


def render_episode(env_name: str, env, env_params, states, num_steps: int,
                   caption: bool = True) -> list[np.ndarray]:
    """Frames of the first `num_steps` states of one episode.

    `states`: the unbatched env state pytree with every leaf stacked along a leading time axis
    of length T >= num_steps (e.g. the states a `jax.lax.scan` over `env.step` collected).
    Returns `num_steps` arrays of shape (H, W, 3) uint8, as `render_frame` draws them.
    """
    length = min((np.shape(leaf)[0] for leaf in jax.tree.leaves(states)), default=0)
    if not 0 <= num_steps <= length:
        raise ValueError(f"num_steps={num_steps} but the states hold {length} time steps")
    states = jax.tree.map(lambda leaf: leaf[:num_steps], states)
    observations = _observations(env_name, env, env_params, states, num_steps)
    host = jax.device_get(states)
    return [render_frame(env_name, env, env_params, jax.tree.map(lambda leaf: leaf[t], host),
                         caption, None if observations is None else observations[t])
            for t in range(num_steps)]


def save_gif(frames: Sequence[np.ndarray], path, fps: int = 30) -> None:
    """Write (H, W, 3) uint8 frames, all of one shape, to an animated GIF at `path` that loops
    forever, 1000 / fps ms per frame.

    GIF stores delays in 10 ms units, and Pillow merges a frame identical to the one before it
    into a single longer frame (same playback): captioned frames from `render_episode` differ by
    their step counter, so the file then holds exactly one frame per step. Raises ValueError for
    an empty list, frames of different shapes, or fps <= 0.
    """
    if len(frames) == 0:
        raise ValueError("save_gif: no frames to write")
    if fps <= 0:
        raise ValueError(f"save_gif: fps must be positive, got {fps}")
    shapes = {np.shape(frame) for frame in frames}
    if len(shapes) != 1:
        raise ValueError(f"save_gif: frames have different shapes {sorted(shapes)}")
    images = [Image.fromarray(np.asarray(frame, np.uint8)) for frame in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:],
                   duration=1000 / fps, loop=0)
