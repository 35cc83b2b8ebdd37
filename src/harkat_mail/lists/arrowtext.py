"""Text columns as Arrow arrays: the list-cleaning steps that must be fast on a million rows.

pandas' string methods wrap Arrow compute for some operations and fall back to a Python
loop per row for others (NFC, title case). Here each column is cleaned with Arrow compute,
and the per-value rules of names run once per distinct value, not once per row: a member
export repeats the same first names and last names thousands of times.
"""

from __future__ import annotations

import unicodedata

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

TEXT = pa.large_string()  # what pandas' Arrow-backed strings hold: no cast on the way in or out
_STR = pd.StringDtype(storage="pyarrow", na_value=float("nan"))


def to_arrow(series: pd.Series) -> pa.Array:
    """The column as one Arrow string array (no copy when it is Arrow-backed already)."""
    values = series.array
    if isinstance(values, pd.arrays.ArrowStringArray):
        chunked = pa.chunked_array(values.__arrow_array__())
    else:
        chunked = pa.chunked_array([pa.array(series.astype(str).tolist(), TEXT)])
    if chunked.num_chunks == 0:
        return pa.array([], TEXT)
    array = chunked.combine_chunks()
    return array.cast(TEXT) if array.type != TEXT else array


def to_series(array: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    """An Arrow string array back as a pandas ``str`` column (nulls read as missing)."""
    chunked = array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array])
    # pandas-stubs lag pandas 3, whose constructor takes the dtype (the NaN-missing "str").
    values = pd.arrays.ArrowStringArray(chunked, dtype=_STR)  # type: ignore[call-arg]
    return pd.Series(values, index=index, copy=False)


def clean_name(value: str) -> str:
    """NFC, whitespace runs as one space; ALL CAPS or all lower becomes Title Case.

    Mixed case is the member's own spelling (``MacDonald``, ``de la Fontaine``) and is kept.
    """
    text = " ".join(unicodedata.normalize("NFC", value).split())
    return text.title() if text.isupper() or text.islower() else text


def clean_column(series: pd.Series, name: bool) -> pd.Series:
    """Trim every value; for names apply :func:`clean_name` once per distinct value."""
    array = pc.utf8_trim_whitespace(to_arrow(series)).fill_null("")
    if name:
        encoded = pc.dictionary_encode(array)
        dictionary = pa.array([clean_name(v) for v in encoded.dictionary.to_pylist()], TEXT)
        array = pc.take(dictionary, encoded.indices)
    return to_series(array, series.index)
