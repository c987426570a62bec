"""Offline WordNet synset lookup for the optional ``wordnet`` answer matcher.

nltk is imported only here and only when a WordNet lookup is built, so the
rest of rsmetrics never needs it. The corpus is read from disk and never
downloaded: from the caller's directory, else ``$RSMETRICS_WORDNET_DIR``, else
nltk's own data path.

Example:
    >>> lookup = {"car": {"car.n.01"}, "auto": {"car.n.01"}}.get
    >>> sorted(lookup("auto"))
    ['car.n.01']
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from functools import lru_cache
from pathlib import Path
from typing import Any

from rsmetrics.errors import RSMetricsError

__all__ = ["ENV_VAR", "INSTALL_HINT", "SynsetLookup", "load_wordnet_lookup"]

ENV_VAR = "RSMETRICS_WORDNET_DIR"

INSTALL_HINT = (
    "WordNet matching needs `pip install rsmetrics[wordnet]` and the WordNet corpus: "
    "python -m nltk.downloader -d DIR wordnet; then set RSMETRICS_WORDNET_DIR=DIR"
)

SynsetLookup = Callable[[str], AbstractSet[str]]
"""Maps one answer string to the names of its synsets (empty set: none)."""

# One reader per corpus location: building it parses ~10 MB of index files.
_LOOKUPS: dict[str, SynsetLookup] = {}
_LOCK = threading.Lock()


def load_wordnet_lookup(
    wordnet_dir: str | os.PathLike[str] | None = None,
) -> SynsetLookup:
    """Build a synset lookup from a local WordNet corpus, the way ``wn.synsets`` works.

    The lookup lower-cases the word and lemmatises it with WordNet's morphy (so
    ``cars`` finds the synsets of ``car``) over all parts of speech, exactly as
    ``nltk.corpus.wordnet.synsets(word)`` does. Multi-word strings with spaces
    find nothing, as in the reference scorers.

    Args:
        wordnet_dir: Where the corpus is. Either an nltk data directory (the
            ``DIR`` of ``python -m nltk.downloader -d DIR wordnet``, holding
            ``corpora/wordnet`` or ``corpora/wordnet.zip``), its ``corpora``
            folder, or the unpacked corpus folder itself (holding ``lexnames``).
            ``None`` reads ``$RSMETRICS_WORDNET_DIR``, then nltk's default data
            path. A directory given here or in the variable is appended to
            ``nltk.data.path``, which recent nltk requires before it reads a
            corpus outside its data path.

    Returns:
        A cached function ``word -> frozenset of synset names`` such as
        ``{"car.n.01"}``.

    Raises:
        RSMetricsError: nltk is not installed or no corpus is found; the
            message says how to install both.

    Example:
        >>> load_wordnet_lookup("/nonexistent")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        rsmetrics.errors.RSMetricsError: WordNet matching needs ...
    """
    directory = os.fspath(wordnet_dir) if wordnet_dir is not None else os.environ.get(ENV_VAR)
    key = directory or ""
    with _LOCK:
        cached = _LOOKUPS.get(key)
        if cached is None:
            cached = _build_lookup(directory)
            _LOOKUPS[key] = cached
    return cached


def _build_lookup(directory: str | None) -> SynsetLookup:
    try:
        import nltk.data
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError as exc:
        raise RSMetricsError(INSTALL_HINT) from exc

    class _EnglishReader(WordNetCorpusReader):  # type: ignore[misc]
        # nltk >= 3.9 maps the corpus onto the *default* "wordnet" corpus for
        # multilingual (OMW) data at construction, which looks in nltk's data
        # path and fails for a corpus that lives elsewhere. English synsets
        # never use that mapping, so skip it.
        def map_wn(self, version: str = "wordnet") -> None:
            return None

        def map_wn30(self) -> None:
            return None

    root = _find_corpus(nltk.data, directory)
    try:
        with warnings.catch_warnings():
            # Without an OMW reader nltk warns that multilingual functions are
            # unavailable; they are not used here.
            warnings.simplefilter("ignore")
            reader = _EnglishReader(root, None)
    except Exception as exc:  # a truncated or foreign corpus fails in many ways
        raise RSMetricsError(f"{INSTALL_HINT} (the corpus at {root} could not be read: {exc})") from exc

    @lru_cache(maxsize=1 << 16)
    def synsets_of(word: str) -> frozenset[str]:
        return frozenset(synset.name() for synset in reader.synsets(word))

    return synsets_of


def _find_corpus(nltk_data: Any, directory: str | None) -> Any:
    if directory is None:
        for resource in ("corpora/wordnet", "corpora/wordnet.zip/wordnet/"):
            try:
                return nltk_data.find(resource)
            except LookupError:
                continue
        raise RSMetricsError(f"{INSTALL_HINT} (no WordNet corpus on nltk's data path)")
    path = Path(directory)
    # nltk >= 3.9.3 refuses to read outside its data path, and appending to it is
    # the authorisation it documents; the caller named this directory for that.
    if path.is_dir() and str(path) not in map(str, nltk_data.path):
        nltk_data.path.append(str(path))
    if (path / "lexnames").is_file():
        return nltk_data.FileSystemPathPointer(str(path))
    # The downloader leaves corpora/wordnet.zip (recent nltk) or an unpacked
    # corpora/wordnet; the zip member form is the one nltk's own loader uses.
    for resource in (
        "corpora/wordnet",
        "corpora/wordnet.zip/wordnet/",
        "wordnet",
        "wordnet.zip/wordnet/",
    ):
        try:
            return nltk_data.find(resource, paths=[str(path)])
        except LookupError:
            continue
    raise RSMetricsError(f"{INSTALL_HINT} (no WordNet corpus found under {directory})")
