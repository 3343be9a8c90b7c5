"""Loss-curve analysis: the rapid drop, the slow decline, its zig-zag and its spectrum.

The rule that splits a curve (stated in reports): on the log10 loss, smoothed by a running median
of ``window`` steps, the rapid drop ends at the *knee*: the step farthest below the straight chord
from the first to the last point (the largest gap between the curve and the chord). A curve that
falls fast then slowly bends below its chord most at the change of regime; the rule needs no
threshold and finds the break of a two-slope curve exactly.

On the slow phase:
* zig-zag: the mean relative standard deviation of the loss in windows of ``window`` steps, and
  the fraction of steps where the loss increment changes sign (0.5 for a random walk, near 1 for a
  step-by-step oscillation, near 0 for a smooth decline);
* up-excursions (the claim's "up-down" loss): the loss rising at least ``excursion`` (relative,
  default 10 %) above its running minimum, until it comes back down to a new minimum; their count,
  rate per 1000 steps, mean and largest height (decades above the running minimum) and the median
  spacing of their starts (the period);
* the trend's SD (the claim's "relatively high standard deviation"): the standard deviation of the
  natural log of the loss around a smooth trend, a quadratic in log(step) fitted by least squares
  (a power-law decline is a straight line in it, a bend of the rate is the quadratic term; neither
  can follow spikes). ``trend_sd`` ≈ the loss's relative SD around its trend;
* spectrum: the log10 loss minus that trend, Hann-windowed, |rfft|²; the dominant frequency
  (cycles per step) and the share of the (non-constant) power within ±1 bin of it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class CurveAnalysis:
    split: int  # first step of the slow phase
    drop_decades: float  # log10 decrease during the rapid drop
    slow_decades: float  # log10 decrease during the slow phase
    rel_std: float  # mean relative std of the loss in windows of the slow phase
    sign_changes: float  # fraction of sign changes of the loss increment in the slow phase
    peak_frequency: float  # dominant frequency of the detrended slow-phase log-loss (cycles/step)
    peak_share: float  # share of the spectral power at that peak
    excursions: int  # up-excursions of the slow phase above its running minimum
    excursion_rate: float  # per 1000 slow-phase steps
    excursion_size: float  # mean height, decades above the running minimum (0 if none)
    excursion_max: float  # largest height, decades
    excursion_period: float  # median steps between excursion starts (NaN if fewer than 2)
    trend_sd: float  # SD of ln(loss) around its quadratic-in-log-step trend (slow phase)
    frequencies: np.ndarray
    power: np.ndarray

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("frequencies")
        d.pop("power")
        return d


def _running_median(x: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(x) < window:
        return x.copy()
    pad = window // 2
    padded = np.pad(x, (pad, window - 1 - pad), mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, window), axis=1)


def knee(y: np.ndarray) -> int:
    """Index of the point farthest below the chord from y[0] to y[-1]."""
    t = np.arange(len(y), dtype=float)
    chord = y[0] + (y[-1] - y[0]) * t / max(len(y) - 1, 1)
    return int(np.argmax(chord - y))


def up_excursions(loss, excursion: float = 0.1) -> dict:
    """Up-excursions of ``loss``: an excursion starts when the loss stands ≥ ``excursion``
    (relative) above its running minimum and ends when the loss sets a new minimum (it came back
    down: the ringing of one spike is one excursion). ``count``, ``rate`` (per 1000 steps),
    ``size`` (mean peak height, decades above the minimum at its start), ``max``, ``period``
    (median spacing of the starts, NaN below two)."""
    log = np.log10(np.asarray(loss, dtype=float))
    threshold = np.log10(1 + excursion)
    starts, peaks = [], []
    low, inside = np.inf, False
    for t, v in enumerate(log):
        if v < low:  # a new minimum ends any excursion
            low, inside = v, False
        elif not inside and v - low >= threshold:
            inside = True
            starts.append(t)
            peaks.append(v - low)
        elif inside:
            peaks[-1] = max(peaks[-1], v - low)
    peaks = np.asarray(peaks)
    return {
        "count": len(starts),
        "rate": 1000.0 * len(starts) / max(len(log), 1),
        "size": float(peaks.mean()) if len(peaks) else 0.0,
        "max": float(peaks.max()) if len(peaks) else 0.0,
        "period": float(np.median(np.diff(starts))) if len(starts) > 1 else float("nan"),
    }


def log_trend(loss, first_step: int = 1) -> np.ndarray:
    """The smooth trend of ln(loss): least squares quadratic in ln(step), steps counted from
    ``first_step`` (the slow phase's first step in the whole run)."""
    y = np.log(np.asarray(loss, dtype=float))
    s = np.log(first_step + np.arange(len(y), dtype=float))
    return np.polyval(np.polyfit(s, y, 2), s)


def analyse(loss, window: int = 25, excursion: float = 0.1) -> CurveAnalysis:
    """Analyse a loss curve (positive values; shift Ritz energies by their minimum first)."""
    loss = np.asarray(loss, dtype=float)
    if loss.ndim != 1 or len(loss) < 4 * window:
        raise ValueError(
            f"loss must be a 1-D curve of at least {4 * window} steps, got shape {loss.shape}"
        )
    if not np.all(np.isfinite(loss)) or np.any(loss <= 0):
        raise ValueError("loss must be finite and positive (shift energies by their minimum)")
    log = np.log10(loss)
    smooth = _running_median(log, window)
    split = knee(smooth)
    slow = loss[split:]
    n_win = max(len(slow) // window, 1)
    chunks = np.array_split(slow, n_win)
    rel_std = float(np.mean([np.std(c) / np.mean(c) for c in chunks]))
    inc = np.diff(slow)
    signs = np.sign(inc[inc != 0])
    sign_changes = float(np.mean(signs[1:] != signs[:-1])) if len(signs) > 1 else 0.0
    trend = log_trend(slow, split + 1)
    resid = np.log(slow) - trend
    detrended = resid / np.log(10)
    exc = up_excursions(slow, excursion)
    power = np.abs(np.fft.rfft(detrended * np.hanning(len(detrended)))) ** 2
    freqs = np.fft.rfftfreq(len(detrended))
    power, freqs = power[1:], freqs[1:]  # no constant term
    k = int(np.argmax(power))
    share = float(power[max(k - 1, 0) : k + 2].sum() / power.sum()) if power.sum() > 0 else 0.0
    return CurveAnalysis(
        split=split,
        drop_decades=float(smooth[0] - smooth[split]),
        slow_decades=float(smooth[split] - smooth[-1]),
        rel_std=rel_std,
        sign_changes=sign_changes,
        peak_frequency=float(freqs[k]),
        peak_share=share,
        excursions=exc["count"],
        excursion_rate=exc["rate"],
        excursion_size=exc["size"],
        excursion_max=exc["max"],
        excursion_period=exc["period"],
        trend_sd=float(np.std(resid)),
        frequencies=freqs,
        power=power,
    )
