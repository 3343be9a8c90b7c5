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
* spectrum: the log10 loss minus its least-squares straight line, Hann-windowed, |rfft|²; the
  dominant frequency (cycles per step) and the share of the (non-constant) power within ±1 bin of it.
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


def analyse(loss, window: int = 25) -> CurveAnalysis:
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
    slog = log[split:]
    n_win = max(len(slow) // window, 1)
    chunks = np.array_split(slow, n_win)
    rel_std = float(np.mean([np.std(c) / np.mean(c) for c in chunks]))
    inc = np.diff(slow)
    signs = np.sign(inc[inc != 0])
    sign_changes = float(np.mean(signs[1:] != signs[:-1])) if len(signs) > 1 else 0.0
    t = np.arange(len(slog), dtype=float)
    detrended = slog - np.polyval(np.polyfit(t, slog, 1), t)
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
        frequencies=freqs,
        power=power,
    )
