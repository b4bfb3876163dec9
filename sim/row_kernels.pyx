# cython: language_level=3, boundscheck=False, wraparound=False
"""The recorder's row appends in C: a row's strings looked up and its values stored.

A year of a large depot records a few million rows (connector statuses, vehicle
steps, plug-ins, departures); in Python each cost a call plus a dict lookup per
string and an append per column. These functions do the common case (every name
already has a code that the column can hold, every number already a ``float`` or
``int``) and return False, having stored nothing, for anything else: the recorder
then takes its Python path, which draws new codes, widens columns and converts or
refuses values with a precise error. The columns are ``array.array`` buffers:
``d`` for numbers and times, ``q`` for integers, ``b`` for truth values, ``h`` or
``i`` for string codes.
"""

from cpython cimport array
from cpython.dict cimport PyDict_GetItem
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_Check
from cpython.long cimport PyLong_AsLongLong, PyLong_CheckExact
from cpython.object cimport PyObject, PyObject_IsTrue

cdef extern from "Python.h":
    Py_ssize_t Py_SIZE(object o)

cdef enum:
    MAX_COLUMNS = 32
cdef long long _MISSING = -2


cdef inline long long _code(dict codes, object name, array.array column) except? -3:
    """The code of ``name`` (-1 for None), or -2 if it has none or the column cannot hold it."""
    cdef PyObject* found
    cdef long long code
    if name is None:
        return -1
    found = PyDict_GetItem(codes, name)
    if found == NULL:
        return _MISSING
    code = PyLong_AsLongLong(<object>found)
    if column.ob_descr.itemsize == 2 and code > 32767:
        return _MISSING
    return code


cdef inline void _store_code(array.array column, Py_ssize_t at, long long code) noexcept:
    if column.ob_descr.itemsize == 2:
        column.data.as_shorts[at] = <short>code
    else:
        column.data.as_ints[at] = <int>code


cdef inline Py_ssize_t _grow(array.array column) except -1:
    """Make room for one more item; return its index."""
    cdef Py_ssize_t n = Py_SIZE(column)
    array.resize_smart(column, n + 1)
    return n


def event_row(list cols, dict codes, double t, kind, vehicle, charger, connector, value, detail):
    """Append an event row to ``cols`` (time, kind, vehicle, charger, connector, value,
    detail); False, storing nothing, if a name has no code yet or ``value`` is not a float."""
    cdef array.array c_time = cols[0], c_kind = cols[1], c_vehicle = cols[2], c_charger = cols[3]
    cdef array.array c_connector = cols[4], c_value = cols[5], c_detail = cols[6]
    cdef long long k, v, c, o, d
    cdef double x
    if not PyFloat_Check(value):
        return False
    x = PyFloat_AS_DOUBLE(value)
    k = _code(codes, kind, c_kind)
    v = _code(codes, vehicle, c_vehicle)
    c = _code(codes, charger, c_charger)
    o = _code(codes, connector, c_connector)
    d = _code(codes, detail, c_detail)
    if k == _MISSING or v == _MISSING or c == _MISSING or o == _MISSING or d == _MISSING:
        return False
    c_time.data.as_doubles[_grow(c_time)] = t
    _store_code(c_kind, _grow(c_kind), k)
    _store_code(c_vehicle, _grow(c_vehicle), v)
    _store_code(c_charger, _grow(c_charger), c)
    _store_code(c_connector, _grow(c_connector), o)
    c_value.data.as_doubles[_grow(c_value)] = x
    _store_code(c_detail, _grow(c_detail), d)
    return True


def vehicle_row(list cols, dict codes, double t, vehicle, double soc, state, event):
    """Append a vehicles row to ``cols`` (time, vehicle, soc, state, event); False, storing
    nothing, if a name has no code yet or its column cannot hold the code."""
    cdef array.array c_time = cols[0], c_vehicle = cols[1], c_soc = cols[2], c_state = cols[3]
    cdef array.array c_event = cols[4]
    cdef long long v = _code(codes, vehicle, c_vehicle)
    cdef long long s = _code(codes, state, c_state)
    cdef long long e = _code(codes, event, c_event)
    if v < 0 or s < 0 or e < 0:
        return False
    c_time.data.as_doubles[_grow(c_time)] = t
    _store_code(c_vehicle, _grow(c_vehicle), v)
    c_soc.data.as_doubles[_grow(c_soc)] = soc
    _store_code(c_state, _grow(c_state), s)
    _store_code(c_event, _grow(c_event), e)
    return True


def add_row(list cols, bytes kinds, dict codes, tuple row):
    """Append ``row`` to ``cols`` by ``kinds`` (one letter per column: ``d``/``t`` float,
    ``q`` int, ``?`` truth value, ``s`` string code); False, storing nothing, unless every
    number is a ``float`` (``int`` for ``q``) and every name has a code its column holds."""
    cdef Py_ssize_t n = len(kinds), i
    cdef double nums[MAX_COLUMNS]
    cdef long long ints[MAX_COLUMNS]
    cdef char kind
    cdef array.array column
    if len(row) != n or len(cols) != n or n > MAX_COLUMNS:
        return False
    for i in range(n):  # convert first: a row is stored whole or not at all
        kind = kinds[i]
        value = row[i]
        if kind == b"d" or kind == b"t":
            if not PyFloat_Check(value):
                return False
            nums[i] = PyFloat_AS_DOUBLE(value)
        elif kind == b"q":
            if not PyLong_CheckExact(value):
                return False
            ints[i] = PyLong_AsLongLong(value)
        elif kind == b"?":
            ints[i] = PyObject_IsTrue(value)
        elif kind == b"s":
            ints[i] = _code(codes, value, cols[i])
            if ints[i] == _MISSING:
                return False
        else:
            return False
    for i in range(n):
        column = cols[i]
        kind = kinds[i]
        if kind == b"d" or kind == b"t":
            column.data.as_doubles[_grow(column)] = nums[i]
        elif kind == b"q":
            column.data.as_longlongs[_grow(column)] = ints[i]
        elif kind == b"?":
            column.data.as_schars[_grow(column)] = <signed char>ints[i]
        else:
            _store_code(column, _grow(column), ints[i])
    return True
