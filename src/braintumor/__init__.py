"""braintumor: brain-tumour MRI classification with honest evaluation.

Research software, not a medical device: never use its output for diagnosis.
"""

__version__ = "0.1.0"

DISCLAIMER = "Research use only. Not a medical device; not for diagnosis or treatment decisions."

# Names of the class-activation-map methods, the default first. `braintumor.explain.METHODS` maps them to
# pytorch-grad-cam classes; the names live here so the CLI and the server can list them without importing it.
CAM_METHODS = ("layercam", "gradcam", "gradcam++")

# Text files that hold file paths (lists, CSV, JSON) are UTF-8 written and read with this error handler:
# a Linux file name need not be valid UTF-8, and "surrogateescape" writes its bytes back unchanged, so a
# list names exactly the file on disk and one odd name never stops a run.
PATH_ERRORS = "surrogateescape"


def shown_name(name: str) -> str:
    """A file name as one line of valid UTF-8 text for people and JSON readers.

    Bytes that are not UTF-8 (kept as surrogates by "surrogateescape") become `\\xNN`, and control
    characters (a newline, an escape sequence) their Python escapes, so a crafted name can neither forge
    an output line nor make the output undecodable. Lists meant for other tools keep the exact bytes.
    """
    text = name.encode("utf-8", PATH_ERRORS).decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
