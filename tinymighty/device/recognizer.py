"""The keyword spotter's post-processing on the host: the reference of firmware/pipeline/recognizer.c.

The device and the host turn the same network outputs into the same events, exactly: both work on integers.
Per inference, the scores (each int8 output minus the output zero point; 0..255 for a softmax) go into a
window of the last ``window`` inferences. Once the window is full, the class with the largest window sum
(the first on ties) fires an event when it is a keyword and its sum is above ``threshold``; after an event
no other fires for ``suppression`` inferences.

``settings`` turns config.yaml's ``recognizer:`` section (milliseconds and an average probability) into
those integers for one model; ``check_config`` rejects settings the firmware cannot take before any job
runs. ``score_detections`` compares events with the keywords placed in a recording: hits, misses and false
alarms within a tolerance window.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..config import ConfigError
from ..data.prepare import SILENCE, UNKNOWN

# firmware/pipeline/recognizer.h and pipeline.h
MAX_WINDOW = 32
MAX_CLASSES = 8
MAX_INTERVAL = 8


@dataclass(frozen=True)
class Settings:
    """The recognizer as the firmware takes it (STREAM's arguments), in inferences and score sums."""

    interval: int  # feature strides per inference
    window: int  # inferences averaged
    threshold: int  # a keyword fires when its window sum is above this
    suppression: int  # inferences after an event in which none fires
    keywords: int  # bit c set: class c can fire
    classes: int
    zero_point: int  # the network's output zero point

    def as_dict(self) -> dict:
        return asdict(self)


def inference_ms(rec: dict, features: dict) -> float:
    return rec["interval_strides"] * features["stride_ms"]


def window_inferences(rec: dict, features: dict) -> int:
    """The averaging window in inferences: average_window_ms rounded to whole inferences (at least one)."""
    return max(1, int(round(rec["average_window_ms"] / inference_ms(rec, features))))


def suppression_inferences(rec: dict, features: dict) -> int:
    """suppression_ms in inferences, rounded up: at least that long."""
    return int(math.ceil(rec["suppression_ms"] / inference_ms(rec, features) - 1e-9))


def check_config(config) -> None:
    """What the schema's ranges cannot say: the settings in inferences must fit the firmware's limits."""
    rec, features = config["recognizer"], config["features"]
    step = inference_ms(rec, features)
    if rec["interval_strides"] > MAX_INTERVAL:
        raise ConfigError(
            f"recognizer.interval_strides ({rec['interval_strides']}) is above the firmware's {MAX_INTERVAL}"
        )
    w = window_inferences(rec, features)
    if w > MAX_WINDOW:
        raise ConfigError(
            f"recognizer.average_window_ms ({rec['average_window_ms']}) is {w} inferences of {step:g} ms "
            f"(interval_strides {rec['interval_strides']} x features.stride_ms {features['stride_ms']}); the firmware "
            f"averages at most {MAX_WINDOW}: shorten the window to at most {MAX_WINDOW * step:g} ms"
        )
    labels = len(config["data"]["wanted_words"]) + 2
    if labels > MAX_CLASSES:
        raise ConfigError(
            f"data.wanted_words has {labels - 2} words, so the network has {labels} outputs; the recognizer in the "
            f"firmware takes at most {MAX_CLASSES}: keep at most {MAX_CLASSES - 2} wanted words"
        )


def settings(rec: dict, features: dict, labels, out_scale: float, out_zero_point: int) -> Settings:
    """The firmware's integers for config.yaml's recognizer section and one model's output quantisation.

    threshold is an average probability: the window sum of (output - zero point) must be above
    threshold * window / out_scale; the largest integer not above that bound is the same test on integers."""
    w = window_inferences(rec, features)
    keywords = sum(1 << i for i, lab in enumerate(labels) if lab not in (SILENCE, UNKNOWN))
    return Settings(
        interval=int(rec["interval_strides"]),
        window=w,
        threshold=int(math.floor(rec["threshold"] * w / out_scale)),
        suppression=suppression_inferences(rec, features),
        keywords=keywords,
        classes=len(labels),
        zero_point=int(out_zero_point),
    )


class Recognizer:
    """recognizer.c step for step: update() takes one inference's int8 outputs and returns (class, window
    sum) when a keyword fires, else None."""

    def __init__(self, s: Settings):
        if not 1 <= s.window <= MAX_WINDOW or not 1 <= s.classes <= MAX_CLASSES:
            raise ValueError(f"window {s.window} (1..{MAX_WINDOW}) or classes {s.classes} (1..{MAX_CLASSES})")
        self.s = s
        self.scores = np.zeros((s.window, s.classes), np.int64)
        self.sums = [0] * s.classes
        self.count = self.next = self.quiet = 0

    def update(self, out) -> tuple[int, int] | None:
        s = self.s
        full = self.count == s.window
        row = self.scores[self.next]
        for c in range(s.classes):
            score = int(out[c]) - s.zero_point
            if full:
                self.sums[c] -= int(row[c])
            row[c] = score
            self.sums[c] += score
        self.next = 0 if self.next + 1 == s.window else self.next + 1
        if not full:
            self.count += 1
        if self.quiet:
            self.quiet -= 1
            return None
        if self.count < s.window:
            return None
        best = 0
        for c in range(1, s.classes):
            if self.sums[c] > self.sums[best]:
                best = c
        if not (s.keywords >> best) & 1 or self.sums[best] <= s.threshold:
            return None
        self.quiet = s.suppression
        return best, self.sums[best]


def recognize(outputs, s: Settings) -> list[tuple[int, int, int]]:
    """(inference index, class, window sum) of every event in a run of outputs (inferences, classes)."""
    r = Recognizer(s)
    events = []
    for i, out in enumerate(np.asarray(outputs)):
        fired = r.update(out)
        if fired:
            events.append((i, *fired))
    return events


def score_detections(events, placements, tolerance_s: float) -> dict:
    """Hits, misses and false alarms of detected keywords against the keywords placed in a recording.

    events: [{"time_s", "label"}] in time order; placements: [{"start_s", "end_s", "label", "keyword"}]. An
    event is a hit when it names an unmatched placed keyword whose span, extended by tolerance_s after its
    end, holds it (the earliest such keyword); every other event is a false alarm (one naming the wrong word
    of a placed keyword is counted apart too), and a placed keyword no event matched is a miss."""
    keywords = sorted((p for p in placements if p["keyword"]), key=lambda p: p["start_s"])
    matched = [False] * len(keywords)
    hits = wrong = false_alarms = 0
    detail = []
    for e in events:
        t = e["time_s"]
        spans = [i for i, p in enumerate(keywords) if p["start_s"] <= t <= p["end_s"] + tolerance_s]
        hit = next((i for i in spans if not matched[i] and keywords[i]["label"] == e["label"]), None)
        if hit is not None:
            matched[hit] = True
            hits += 1
            detail.append({**e, "result": "hit", "placed_s": keywords[hit]["start_s"]})
            continue
        false_alarms += 1
        is_wrong = any(keywords[i]["label"] != e["label"] for i in spans)
        wrong += is_wrong
        detail.append({**e, "result": "wrong keyword" if is_wrong else "false alarm"})
    n = len(keywords)
    return {
        "keywords": n,
        "hits": hits,
        "misses": n - hits,
        "false_alarms": false_alarms,
        "wrong_keyword": wrong,
        "hit_rate": hits / n if n else None,
        "tolerance_s": tolerance_s,
        "events": detail,
    }
