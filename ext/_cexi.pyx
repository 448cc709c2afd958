# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""C-speed EXI codec: interprets the grammar tables ``_C_<class>`` that tools/generate.py writes
into the generated modules from the same grammar model as the pure-Python codec.

Decoding answers every byte string of a complex-typed document element itself: the message, or
the typed error the pure-Python codec gives for it — same class, bit offset, path and reason,
made by the same constructors (``_pyrt``, ``_pycodec``) — so a bad stream costs C time, not a
second decode in Python. Both read fixed-width items one by one and report the first bad one
at its end (the pure codec merges reads and finds that item again when a check fails).

Encoding handles valid messages; anything else — an invalid message, an integer beyond 64 bits,
the xmldsig types with general grammars — raises ``Fallback`` and the caller runs the
pure-Python encoder, which gives the bytes or the canonical ExiEncodeError. Decoding raises
``Fallback`` only for inputs that are not ``bytes`` and simple-typed document elements.
The differential tests (tests/exi/test_backends.py) check both directions against the
pure-Python codec.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_FromLongLong, PyLong_FromUnsignedLongLong
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    object PyType_GenericAlloc(object cls, Py_ssize_t nitems)
    void Py_INCREF(PyObject* o)
    void Py_XDECREF(PyObject* o)
    int PyObject_GenericSetAttr(object o, object name, object value) except -1
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void* PyUnicode_DATA(object o)
    int PyUnicode_KIND(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    bint PyUnicode_IS_ASCII(object o)
    Py_UCS4 PyUnicode_READ(int kind, void* data, Py_ssize_t index)
    void PyUnicode_WRITE(int kind, void* data, Py_ssize_t index, Py_UCS4 value)
    bint PyUnicode_Check(object o)
    bint PyLong_Check(object o)
    bint PyBytes_Check(object o)
    bint PyByteArray_Check(object o)
    bint PyList_Check(object o)
    bint PyTuple_Check(object o)
    long long PyLong_AsLongLongAndOverflow(object o, int* overflow) except? -1
    unsigned long long PyLong_AsUnsignedLongLong(object o) except? -1
    int _PyLong_Sign(object o)


from iso15118.exi import _pycodec, _pyrt

SOURCE_SHA256 = V2H_SOURCE_SHA256  # of the ext/_cexi.pyx this module was built from (setup.py)


class Fallback(Exception):
    """This input is not for the fast path: use the pure-Python codec."""



cdef object _EMPTY_STR = ""
cdef object _EMPTY_BYTES = b""
cdef object _new = object.__new__

# value codings (the first letter of the generated coding tuple)
DEF M_TYPE = 0
DEF M_BOOL = 1
DEF M_NBIT = 2
DEF M_UINT = 3
DEF M_INT = 4
DEF M_ENUM = 5
DEF M_STR = 6
DEF M_BIN = 7


cdef struct State:
    int nbits
    int nprod
    int* dec      # [1 << nbits] event id per code (-1 escape, -2 invalid)
    int* tgt      # [1 << nbits] general grammars: the state after the code (-1 none)
    int* enc      # [nev] code per event id (-1 not allowed)
    int* etgt     # [nev] general grammars: the state after writing the event (-1 none)


cdef struct Slot:
    int min
    int gmax      # grammar maxOccurs (-1 unbounded)
    int fmax      # XSD maxOccurs (-1 unbounded)
    int must
    int may
    int full
    int nmem
    int* mem
    bint ch_empty


cdef struct Field:
    PyObject* name
    Py_ssize_t offset   # of the field's slot in the instance (the classes are slotted)
    int eid
    int fkind     # 0 attribute, 1 element, 2 simple content
    bint is_list
    bint empty    # an element whose value may be empty (written as second-level EE)
    int mode
    int nbits
    int64_t lo
    int64_t hi
    uint64_t uhi
    bint has_lo
    bint has_hi
    int maxbits
    Py_ssize_t minlen
    Py_ssize_t maxlen   # -1: unbounded
    int count
    PyObject* values    # enum: tuple of members
    PyObject* index     # enum: dict value -> index
    PyObject* child     # TypeDesc of a complex-typed element
    PyObject* lo_obj    # integers: the bounds as in the schema (None: unbounded), for errors
    PyObject* hi_obj


cdef class TypeDesc:
    cdef object cls
    cdef object name    # the class name: what the pure codec puts in an error's path
    cdef int kind
    cdef int start
    cdef int nstates
    cdef int nslots
    cdef int nfields
    cdef int nev
    cdef State* states
    cdef Slot* slots
    cdef Field* fields
    cdef list keep

    def __cinit__(self):
        self.states = NULL
        self.slots = NULL
        self.fields = NULL
        self.keep = []

    def __dealloc__(self):
        cdef int i
        if self.states != NULL:
            for i in range(self.nstates):
                free(self.states[i].dec)
                free(self.states[i].tgt)
                free(self.states[i].enc)
                free(self.states[i].etgt)
            free(self.states)
        if self.slots != NULL:
            for i in range(self.nslots):
                free(self.slots[i].mem)
            free(self.slots)
        free(self.fields)


# --- building the descriptors from the generated tables ---------------------------------------

cdef dict _universes = {}


cdef int _bitlen(object v):
    return (<object>v).bit_length()


cdef TypeDesc _build(object mod, str name, dict done):
    cdef TypeDesc t = done.get(name)
    if t is not None:
        return t
    table = getattr(mod, "_C_" + name)
    t = TypeDesc()
    done[name] = t
    t.cls = getattr(mod, name)
    t.name = name
    t.kind = table[0]
    states, slots, fields, t.start = table[1], table[2], table[3], table[4]
    cdef int i, j, nev = 0
    cdef Field* f
    for fd in fields:
        nev = max(nev, fd[1] + 1)
    for st in states:
        nev = max(nev, len(st[3]))
    t.nev = nev
    t.nstates = len(states)
    t.states = <State*>malloc(sizeof(State) * max(1, t.nstates))
    for i in range(t.nstates):
        st = states[i]
        t.states[i].nbits = st[0]
        t.states[i].nprod = st[1]
        t.states[i].dec = <int*>malloc(sizeof(int) * len(st[2]))
        t.states[i].tgt = <int*>malloc(sizeof(int) * len(st[2]))
        t.states[i].enc = <int*>malloc(sizeof(int) * max(1, nev))
        for j in range(len(st[2])):
            t.states[i].dec[j] = st[2][j] if t.kind == 0 else st[2][j][0]
            t.states[i].tgt[j] = -1 if t.kind == 0 else st[2][j][1]
        t.states[i].etgt = <int*>malloc(sizeof(int) * max(1, nev))
        for j in range(nev):
            t.states[i].enc[j] = -1
            t.states[i].etgt[j] = -1
        for j in range(len(st[3])):
            if t.kind == 0:
                t.states[i].enc[j] = st[3][j]
            elif st[3][j] is not None:
                t.states[i].enc[j], t.states[i].etgt[j] = st[3][j]
    t.nslots = len(slots)
    t.slots = <Slot*>malloc(sizeof(Slot) * max(1, t.nslots))
    for i in range(t.nslots):
        sl = slots[i]
        t.slots[i].min, t.slots[i].gmax, t.slots[i].fmax = sl[0], sl[1], sl[2]
        t.slots[i].must, t.slots[i].may, t.slots[i].full = sl[3], sl[4], sl[5]
        t.slots[i].nmem = len(sl[6])
        t.slots[i].mem = <int*>malloc(sizeof(int) * max(1, len(sl[6])))
        for j in range(len(sl[6])):
            t.slots[i].mem[j] = sl[6][j]
        t.slots[i].ch_empty = sl[7]
    t.nfields = len(fields)
    t.fields = <Field*>malloc(sizeof(Field) * max(1, t.nfields))
    for i in range(t.nfields):
        fd = fields[i]
        f = &t.fields[i]
        fname = fd[0]
        t.keep.append(fname)
        f.name = <PyObject*>fname
        member = t.cls.__dict__.get(fname)
        if type(member).__name__ != "member_descriptor":
            raise TypeError(f"{t.cls.__name__}.{fname} is not a slot")
        f.offset = (<PyMemberDescrObject*>member).d_member.offset
        f.eid, f.fkind, f.is_list, f.empty = fd[1], fd[2], fd[3], fd[4]
        f.has_lo = f.has_hi = False
        f.lo = f.hi = 0
        f.uhi = 0
        f.minlen = 0
        f.maxlen = -1
        f.values = f.index = f.child = NULL
        f.lo_obj = f.hi_obj = <PyObject*>None
        v = fd[5]
        code = v[0]
        if code == "T":
            child = _build(mod, v[1], done)
            t.keep.append(child)
            f.child = <PyObject*>child
            f.mode = M_TYPE
        elif code == "b":
            f.mode = M_BOOL
        elif code == "n":
            f.mode = M_NBIT
            f.nbits, f.lo, f.hi = v[1], v[2], v[3]
            f.has_lo = f.has_hi = True
            t.keep.append(v)
            f.lo_obj, f.hi_obj = <PyObject*>v[2], <PyObject*>v[3]
        elif code == "u" or code == "i":
            f.mode = M_UINT if code == "u" else M_INT
            lo, hi = v[1], v[2]
            t.keep.append(v)
            f.lo_obj, f.hi_obj = <PyObject*>v[1], <PyObject*>v[2]
            f.has_lo = lo is not None and -(1 << 63) <= lo < (1 << 63)
            f.has_hi = hi is not None and hi < (1 << 64)
            if f.has_lo:
                f.lo = lo
            if f.has_hi:
                f.uhi = hi if hi >= 0 else 0
                f.hi = hi if hi < (1 << 63) else (1 << 63) - 1
            # the same group limit as the pure-Python reader (emit_py.int_coding)
            if code == "u":
                f.maxbits = _bitlen(hi) if hi is not None else 1024
            elif lo is not None and hi is not None:
                f.maxbits = _bitlen(max(abs(lo) - 1, hi))
            else:
                f.maxbits = 1024
        elif code == "e":
            f.mode = M_ENUM
            f.nbits, f.count = v[1], v[2]
            values = getattr(mod, "_EV_" + v[3])
            index = getattr(mod, "_EI_" + v[3])
            t.keep.append(values)
            t.keep.append(index)
            f.values = <PyObject*>values
            f.index = <PyObject*>index
        else:
            f.mode = M_STR if code == "s" else M_BIN
            f.minlen = v[1]
            f.maxlen = -1 if v[2] is None else v[2]
    return t


cdef class Universe:
    cdef object mod
    cdef dict by_class    # class -> (index, TypeDesc) of global elements
    cdef list roots       # index -> TypeDesc or None
    cdef int doc_nbits
    cdef int nglobals

    def __init__(self, mod):
        self.mod = mod
        cdef dict done = {}
        self.by_class = {}
        self.roots = []
        self.doc_nbits = mod.DOC_NBITS
        self.nglobals = len(mod.GLOBAL_ELEMENTS)
        for i, entry in enumerate(mod.GLOBAL_ELEMENTS):
            cls = entry[2]
            desc = None
            if isinstance(cls, type) and hasattr(mod, "_C_" + cls.__name__):
                desc = _build(mod, cls.__name__, done)
                if cls in self.by_class:
                    self.by_class[cls] = None  # type of several global elements: needs element=
                else:
                    self.by_class[cls] = (i, desc)
            self.roots.append(desc)


cpdef Universe universe(object mod):
    """The compiled tables of a generated module (built once)."""
    u = _universes.get(mod.__name__)
    if u is None:
        u = Universe(mod)
        _universes[mod.__name__] = u
    return u


# --- bit writer ------------------------------------------------------------------------------

cdef struct Writer:
    uint8_t* buf
    Py_ssize_t cap
    Py_ssize_t n        # whole bytes written
    uint64_t acc
    int nacc            # bits in acc (< 8 between writes)


cdef int w_grow(Writer* w) except -1:
    cdef Py_ssize_t cap = w.cap * 2
    cdef uint8_t* nb = <uint8_t*>realloc(w.buf, cap)
    if nb == NULL:
        raise MemoryError()
    w.buf = nb
    w.cap = cap
    return 0


cdef inline int w_bits(Writer* w, uint64_t v, int n) except -1:
    """Append the n (<= 56) low bits of v, most significant first."""
    if n == 0:
        return 0
    w.acc = (w.acc << n) | (v & ((<uint64_t>1 << n) - 1))
    w.nacc += n
    while w.nacc >= 8:
        if w.n >= w.cap:
            w_grow(w)
        w.nacc -= 8
        w.buf[w.n] = <uint8_t>(w.acc >> w.nacc)
        w.n += 1
    w.acc &= (<uint64_t>1 << w.nacc) - 1
    return 0


cdef inline int w_uint(Writer* w, uint64_t v) except -1:
    while v >= 128:
        w_bits(w, 0x80 | (v & 0x7F), 8)
        v >>= 7
    w_bits(w, v, 8)
    return 0


cdef int w_bytes(Writer* w, const uint8_t* data, Py_ssize_t n) except -1:
    cdef Py_ssize_t i
    if w.nacc == 0:
        while w.n + n > w.cap:
            w_grow(w)
        memcpy(w.buf + w.n, data, n)
        w.n += n
        return 0
    for i in range(n):
        w_bits(w, data[i], 8)
    return 0


# --- bit reader ------------------------------------------------------------------------------

cdef struct Frame:
    PyObject* name      # the class being decoded (its TypeDesc.name)
    Frame* up


cdef struct Reader:
    const uint8_t* data
    Py_ssize_t nbits
    Py_ssize_t pos
    Frame* top          # the types being decoded, innermost first: an error's path
    bint wide           # r_uint met a value beyond 64 bits and rewound: read it with r_uint_obj


cdef int fail(Reader* r, object err) except -1:
    """Raise a decode error made by the pure codec's constructors, with the path of the types
    being decoded (outermost first), as the pure codec's decoders build it while unwinding."""
    cdef Frame* f = r.top
    cdef list names = []
    while f != NULL:
        names.append(<object>f.name)
        f = f.up
    names.reverse()
    err.path = tuple(names) + err.path
    raise err


cdef int bad_event(Reader* r, int ev) except -1:
    return fail(r, _pyrt.bad_event(ev, r.pos))


cdef int past_the_end(Reader* r) except -1:
    """Out of line, so that r_bits stays small enough to inline."""
    return fail(r, _pyrt.truncated(r.nbits))


cdef inline uint64_t r_bits(Reader* r, int n) except? 0xFFFFFFFFFFFFFFFF:
    """Read n (<= 56) bits."""
    cdef Py_ssize_t pos = r.pos
    cdef Py_ssize_t end = pos + n
    cdef uint64_t v = 0
    cdef Py_ssize_t i, first, last
    if end > r.nbits:
        past_the_end(r)
    if n == 0:
        return 0
    first = pos >> 3
    last = (end - 1) >> 3
    for i in range(first, last + 1):
        v = (v << 8) | r.data[i]
    v >>= ((last + 1) * 8 - end)
    r.pos = end
    return v & ((<uint64_t>1 << n) - 1)


cdef inline uint64_t r_uint(Reader* r, int maxbits) except? 0xFFFFFFFFFFFFFFFF:
    """EXI Unsigned Integer, with the pure-Python reader's group limit. A value that does not
    fit 64 bits sets ``r.wide`` and rewinds: the caller reads it again with r_uint_obj."""
    cdef Py_ssize_t start = r.pos
    cdef uint64_t b = r_bits(r, 8)
    cdef uint64_t v
    cdef int shift = 7
    if b < 128:
        return b
    v = b & 0x7F
    while True:
        b = r_bits(r, 8)
        if shift > 63 or (shift > 57 and (b & 0x7F) >> (64 - shift)):
            r.pos = start
            r.wide = True
            return 0
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 128:
            return v
        if shift >= maxbits:
            fail(r, _pyrt.overlong(maxbits, r.pos))


cdef object r_uint_obj(Reader* r, int maxbits):
    """The same Unsigned Integer as a Python int of any size (the rare path)."""
    cdef uint64_t b = r_bits(r, 8)
    cdef int shift = 7
    r.wide = False
    if b < 128:
        return PyLong_FromUnsignedLongLong(b)
    v = PyLong_FromUnsignedLongLong(b & 0x7F)
    while True:
        b = r_bits(r, 8)
        v |= PyLong_FromUnsignedLongLong(b & 0x7F) << shift
        shift += 7
        if b < 128:
            return v
        if shift >= maxbits:
            fail(r, _pyrt.overlong(maxbits, r.pos))


# --- values ----------------------------------------------------------------------------------

cdef inline bint xml_char(Py_UCS4 c):
    if c < 0x20:
        return c == 9 or c == 10 or c == 13
    if 0xD800 <= c <= 0xDFFF or c == 0xFFFE or c == 0xFFFF:
        return False
    return True


cdef int enc_wide(Writer* w, Field* f, object v) except -1:
    """An integer beyond 64 bits (xs:integer without bounds: ds:X509SerialNumber): the rare
    path, with Python ints. Anything the pure encoder refuses is left to it."""
    lo = <object>f.lo_obj
    hi = <object>f.hi_obj
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise Fallback()
    if f.maxbits >= _pyrt.UNBOUNDED_INT_BITS and not -_pyrt.UNBOUNDED_INT_LIMIT <= v < _pyrt.UNBOUNDED_INT_LIMIT:
        raise Fallback()
    if f.mode == M_INT:
        w_bits(w, 1 if v < 0 else 0, 1)
        if v < 0:
            v = -v - 1
    while v >= 128:
        w_bits(w, 0x80 | <uint64_t>(v & 0x7F), 8)
        v >>= 7
    w_bits(w, <uint64_t>v, 8)
    return 0


cdef int enc_value(Writer* w, Field* f, object v) except -1:
    cdef int overflow = 0
    cdef long long x
    cdef unsigned long long ux
    cdef Py_ssize_t n, i
    cdef const uint8_t* p
    cdef int kind
    cdef void* data
    cdef Py_UCS4 ch
    cdef PyObject* idx
    if f.mode == M_BOOL:
        if v is True:
            w_bits(w, 1, 1)
        elif v is False:
            w_bits(w, 0, 1)
        else:
            raise Fallback()
    elif f.mode == M_NBIT or f.mode == M_INT:
        if not PyLong_Check(v):
            raise Fallback()
        x = PyLong_AsLongLongAndOverflow(v, &overflow)
        if overflow and f.mode == M_INT:
            return enc_wide(w, f, v)
        if overflow or (f.has_lo and x < f.lo) or (f.has_hi and x > f.hi):
            raise Fallback()
        if f.mode == M_NBIT:
            w_bits(w, <uint64_t>(x - f.lo), f.nbits)
        elif x < 0:
            w_bits(w, 1, 1)
            w_uint(w, <uint64_t>(-(x + 1)))
        else:
            w_bits(w, 0, 1)
            w_uint(w, <uint64_t>x)
    elif f.mode == M_UINT:
        if not PyLong_Check(v) or _PyLong_Sign(v) < 0:
            raise Fallback()
        if (<object>v).bit_length() > 64:
            return enc_wide(w, f, v)
        ux = PyLong_AsUnsignedLongLong(v)
        if (f.has_lo and ux < <unsigned long long>f.lo) or (f.has_hi and ux > f.uhi):
            raise Fallback()
        w_uint(w, ux)
    elif f.mode == M_ENUM:
        idx = PyDict_GetItem(<dict>f.index, v)
        if idx == NULL:
            raise Fallback()
        w_bits(w, <uint64_t><long long>(<object>idx), f.nbits)
    elif f.mode == M_STR:
        if not PyUnicode_Check(v):
            raise Fallback()
        n = PyUnicode_GET_LENGTH(v)
        if n < f.minlen or (f.maxlen >= 0 and n > f.maxlen):
            raise Fallback()
        w_uint(w, <uint64_t>(n + 2))
        kind = PyUnicode_KIND(v)
        data = PyUnicode_DATA(v)
        if PyUnicode_IS_ASCII(v):
            p = <const uint8_t*>data
            for i in range(n):
                if p[i] < 0x20 and not xml_char(p[i]):
                    raise Fallback()
            w_bytes(w, p, n)
        else:
            for i in range(n):
                ch = PyUnicode_READ(kind, data, i)
                if not xml_char(ch):
                    raise Fallback()
                w_uint(w, ch)
    elif f.mode == M_BIN:
        if PyBytes_Check(v):
            p = <const uint8_t*>PyBytes_AS_STRING(v)
            n = PyBytes_GET_SIZE(v)
        elif PyByteArray_Check(v):
            p = <const uint8_t*>PyByteArray_AS_STRING(v)
            n = PyByteArray_GET_SIZE(v)
        else:
            raise Fallback()
        if n < f.minlen or (f.maxlen >= 0 and n > f.maxlen):
            raise Fallback()
        w_uint(w, <uint64_t>n)
        w_bytes(w, p, n)
    return 0


cdef int check_int(Reader* r, Field* f, object v) except -1:
    """The pure codec's range check of a decoded integer (bounds as in the schema)."""
    lo = <object>f.lo_obj
    hi = <object>f.hi_obj
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        fail(r, _pyrt.out_of_range(v, lo, hi, r.pos))
    return 0


cdef inline Py_ssize_t r_length(Reader* r, Field* f, bint string) except -1:
    """A string (length + 2) or binary length prefix, checked like the pure codec's."""
    cdef uint64_t u = r_uint(r, 64)
    if r.wide:
        length_error(r, f, string, r_uint_obj(r, 64))
    if string:
        if u < 2:
            fail(r, _pyrt.string_table_hit(r.pos))
        u -= 2
    if (u < <uint64_t>f.minlen or (f.maxlen >= 0 and u > <uint64_t>f.maxlen)
            or u > <uint64_t>((r.nbits - r.pos) // 8)):
        length_error(r, f, string, PyLong_FromUnsignedLongLong(u + 2 if string else u))
    return <Py_ssize_t>u


cdef int length_error(Reader* r, Field* f, bint string, object n) except -1:
    """``n``: the length prefix as read (beyond 64 bits: past every bound and any input)."""
    if string:
        if n < 2:
            fail(r, _pyrt.string_table_hit(r.pos))
        n -= 2
    return fail(r, _pyrt.length_error("string" if string else "binary", n, f.minlen,
                                      None if f.maxlen < 0 else f.maxlen, r.pos))


cdef object dec_value(Reader* r, Field* f):
    cdef uint64_t u
    cdef int64_t x
    cdef bint neg
    cdef Py_ssize_t n, i, start
    cdef Py_UCS4 ch, maxch
    cdef Py_UCS4* buf
    cdef object s, v
    cdef uint8_t* out
    cdef bint ascii, bad
    if f.mode == M_BOOL:
        return r_bits(r, 1) == 1
    if f.mode == M_NBIT:
        x = <int64_t>r_bits(r, f.nbits) + f.lo
        if x > f.hi:
            fail(r, _pyrt.out_of_range(PyLong_FromLongLong(x), <object>f.lo_obj, <object>f.hi_obj, r.pos))
        return PyLong_FromLongLong(x)
    if f.mode == M_UINT:
        u = r_uint(r, f.maxbits)
        if r.wide:
            v = r_uint_obj(r, f.maxbits)
            check_int(r, f, v)
            return v
        if (f.has_lo and u < <uint64_t>f.lo) or (f.has_hi and u > f.uhi):
            check_int(r, f, PyLong_FromUnsignedLongLong(u))
        return PyLong_FromUnsignedLongLong(u)
    if f.mode == M_INT:
        neg = r_bits(r, 1)
        u = r_uint(r, f.maxbits)
        if r.wide or u > 0x7FFFFFFFFFFFFFFF:
            v = r_uint_obj(r, f.maxbits) if r.wide else PyLong_FromUnsignedLongLong(u)
            if neg:
                v = -v - 1
            check_int(r, f, v)
            return v
        x = -<int64_t>u - 1 if neg else <int64_t>u
        if (f.has_lo and x < f.lo) or (f.has_hi and x > f.hi):
            check_int(r, f, PyLong_FromLongLong(x))
        return PyLong_FromLongLong(x)
    if f.mode == M_ENUM:
        u = r_bits(r, f.nbits)
        if u >= <uint64_t>f.count:
            fail(r, _pyrt.bad_enum(PyLong_FromUnsignedLongLong(u), f.count, r.pos))
        return <object>PyTuple_GET_ITEM(<tuple>f.values, <Py_ssize_t>u)
    if f.mode == M_STR:
        n = r_length(r, f, True)
        if n == 0:
            return _EMPTY_STR
        # ASCII when the n bytes ahead all are (one group below 128 per character)
        start = r.pos
        s = PyUnicode_New(n, 127)
        out = <uint8_t*>PyUnicode_DATA(s)
        if start & 7 == 0:
            memcpy(out, r.data + (start >> 3), n)
            r.pos += 8 * n
        else:
            for i in range(n):
                out[i] = <uint8_t>r_bits(r, 8)
        ascii = True
        bad = False
        for i in range(n):
            if out[i] >= 0x80:
                ascii = False
                break
            if out[i] < 0x20 and not xml_char(out[i]):
                bad = True
        if ascii:
            if bad:
                fail(r, _pyrt.not_xml(r.pos))
            return s
        r.pos = start  # not ASCII: one code point per Unsigned Integer
        buf = <Py_UCS4*>malloc(sizeof(Py_UCS4) * n)
        if buf == NULL:
            raise MemoryError()
        try:
            maxch = 0
            bad = False
            for i in range(n):
                u = r_uint(r, 21)
                if u > 0x10FFFF:
                    fail(r, _pyrt.beyond_unicode(PyLong_FromUnsignedLongLong(u), r.pos))
                if not xml_char(<Py_UCS4>u):
                    bad = True
                buf[i] = <Py_UCS4>u
                if buf[i] > maxch:
                    maxch = buf[i]
            if bad:
                fail(r, _pyrt.not_xml(r.pos))
            s = PyUnicode_New(n, maxch)
            kind = PyUnicode_KIND(s)
            for i in range(n):
                PyUnicode_WRITE(kind, PyUnicode_DATA(s), i, buf[i])
            return s
        finally:
            free(buf)
    # binary
    n = r_length(r, f, False)
    s = PyBytes_FromStringAndSize(NULL, n)
    out = <uint8_t*>PyBytes_AS_STRING(s)
    if r.pos & 7 == 0:
        memcpy(out, r.data + (r.pos >> 3), n)
        r.pos += 8 * n
    else:
        for i in range(n):
            out[i] = <uint8_t>r_bits(r, 8)
    return s


# --- message objects: fields read and written through their slots --------------------------

cdef inline object get_field(object o, Field* f):
    cdef PyObject* v = (<PyObject**>((<char*><PyObject*>o) + f.offset))[0]
    if v == NULL:
        raise Fallback()  # a slot never set (an object not built by its __init__)
    return <object>v


cdef inline void set_field(object o, Field* f, object v):
    cdef PyObject** slot = <PyObject**>((<char*><PyObject*>o) + f.offset)
    Py_INCREF(<PyObject*>v)
    Py_XDECREF(slot[0])
    slot[0] = <PyObject*>v


cdef object new_message(TypeDesc t):
    """A fresh instance with every field None: what the dataclass __init__ would give for an
    all-optional call, built without calling it (the fields are then set in place)."""
    cdef object obj = PyType_GenericAlloc(t.cls, 0)
    cdef int i
    for i in range(t.nfields):
        set_field(obj, &t.fields[i], None)
    return obj


# --- complex types ---------------------------------------------------------------------------

cdef inline int emit(Writer* w, TypeDesc t, int s, int ev) except -1:
    cdef int code
    if s < 0:
        raise Fallback()
    code = t.states[s].enc[ev]
    if code < 0:
        raise Fallback()
    w_bits(w, <uint64_t>code, t.states[s].nbits)
    return 0


cdef inline int cat_state(Slot* sl, Py_ssize_t n):
    """The state after n items of a repeated slot (must / may / full)."""
    if sl.min > 1 and n < sl.min:
        return sl.must
    if sl.may < 0:
        return sl.full
    if sl.gmax >= 0 and n >= sl.gmax:
        return sl.full
    return sl.may


cdef int enc_content(Writer* w, Field* f, object v) except -1:
    if f.fkind != 1:
        return enc_value(w, f, v)
    if f.mode == M_TYPE:
        return enc_type(w, <TypeDesc>f.child, v)
    if f.empty and len(v) == 0:
        w_bits(w, 8, 4)  # escape, then EE first of the second level (3 bits)
        return 0
    w_bits(w, 0, 1)      # CH
    enc_value(w, f, v)
    w_bits(w, 0, 1)      # EE
    return 0


cdef inline int emit_general(Writer* w, TypeDesc t, int s, int ev) except -2:
    """Write the code of event ``ev`` in state ``s`` of a general grammar; the next state."""
    cdef int code
    if s < 0:
        raise Fallback()
    code = t.states[s].enc[ev]
    if code < 0:
        raise Fallback()
    w_bits(w, <uint64_t>code, t.states[s].nbits)
    return t.states[s].etgt[ev]


cdef int enc_general(Writer* w, TypeDesc t, object o) except -1:
    """A general grammar (three xmldsig types): the fields in order, as the pure encoder."""
    cdef int s = 0, i
    cdef Py_ssize_t k
    cdef Field* f
    cdef object v
    for i in range(t.nfields):
        f = &t.fields[i]
        v = get_field(o, f)
        if f.is_list:
            if not PyList_Check(v):
                raise Fallback()
            for k in range(PyList_GET_SIZE(v)):
                s = emit_general(w, t, s, f.eid)
                enc_content(w, f, <object>PyList_GET_ITEM(v, k))
        elif v is not None:
            s = emit_general(w, t, s, f.eid)
            enc_content(w, f, v)
    emit_general(w, t, s, 0)
    return 0


cdef int enc_type(Writer* w, TypeDesc t, object o) except -1:
    cdef int s = t.start, j, k, m
    cdef Py_ssize_t n, i
    cdef Slot* sl
    cdef Field* f
    cdef object v, item, seq
    cdef int present
    if type(o) is not t.cls:
        raise Fallback()
    if t.kind != 0:
        return enc_general(w, t, o)
    for j in range(t.nslots):
        sl = &t.slots[j]
        if sl.nmem == 0:
            if sl.min > 0:
                raise Fallback()
            continue
        f = &t.fields[sl.mem[0]]
        if sl.nmem == 1 and not f.is_list:
            v = get_field(o, f)
            if sl.ch_empty:
                if v is None:
                    raise Fallback()
                if len(v) == 0:  # an empty value ends the element at the second level
                    if s < 0:
                        raise Fallback()
                    w_bits(w, <uint64_t>t.states[s].nprod, t.states[s].nbits)
                    w_bits(w, 0, 3)
                    return 0
            if v is None:
                if sl.min > 0:
                    raise Fallback()
                continue
            emit(w, t, s, f.eid)
            enc_content(w, f, v)
            s = sl.full
            continue
        if sl.nmem == 1:
            seq = get_field(o, f)
            if not PyList_Check(seq):
                raise Fallback()
            n = PyList_GET_SIZE(seq)
            if n < sl.min or (sl.fmax >= 0 and n > sl.fmax) or (sl.gmax >= 0 and n > sl.gmax):
                raise Fallback()
            for i in range(n):
                item = <object>PyList_GET_ITEM(seq, i)
                emit(w, t, s if i == 0 else (sl.must if i < sl.min else sl.may), f.eid)
                enc_content(w, f, item)
            if n:
                if sl.full >= 0 and sl.may >= 0:
                    s = sl.full if n == sl.gmax else sl.may
                elif sl.full >= 0:
                    s = sl.full
                else:
                    s = sl.may
            continue
        if sl.gmax == 1 and not f.is_list:
            present = 0
            for k in range(sl.nmem):
                if get_field(o, &t.fields[sl.mem[k]]) is not None:
                    present += 1
            if present > 1 or (present == 0 and sl.min > 0):
                raise Fallback()
            for k in range(sl.nmem):
                f = &t.fields[sl.mem[k]]
                v = get_field(o, f)
                if v is not None:
                    emit(w, t, s, f.eid)
                    enc_content(w, f, v)
                    s = sl.full
                    break
            continue
        # a repeated choice: member by member
        m = s
        n = 0
        for k in range(sl.nmem):
            f = &t.fields[sl.mem[k]]
            seq = get_field(o, f)
            if not PyList_Check(seq):
                raise Fallback()
            for i in range(PyList_GET_SIZE(seq)):
                emit(w, t, m if n == 0 else cat_state(sl, n), f.eid)
                enc_content(w, f, <object>PyList_GET_ITEM(seq, i))
                n += 1
        if n < sl.min or (sl.fmax >= 0 and n > sl.fmax):
            raise Fallback()
        if n:
            s = cat_state(sl, n)
    emit(w, t, s, 0)
    return 0


cdef inline int read_event(Reader* r, TypeDesc t, int s) except -3:
    if s < 0:
        raise Fallback()  # no such state: the tables are not what this interpreter expects
    return t.states[s].dec[r_bits(r, t.states[s].nbits)]


cdef object dec_content(Reader* r, Field* f):
    cdef object v
    if f.fkind != 1:
        return dec_value(r, f)
    if f.mode == M_TYPE:
        return dec_type(r, <TypeDesc>f.child)
    if f.empty:
        if r_bits(r, 1):
            if r_bits(r, 3):
                bad_event(r, -1)
            return _EMPTY_STR if f.mode == M_STR else _EMPTY_BYTES
    elif r_bits(r, 1):
        bad_event(r, -1)  # CH is the only first-level production: the rest is second level
    v = dec_value(r, f)
    if r_bits(r, 1):
        bad_event(r, -1)  # EE likewise
    return v


cdef object dec_type(Reader* r, TypeDesc t):
    cdef Frame frame
    cdef object obj
    frame.name = <PyObject*>t.name
    frame.up = r.top
    r.top = &frame
    obj = dec_flat(r, t) if t.kind == 0 else dec_general(r, t)
    r.top = frame.up
    return obj


cdef object dec_flat(Reader* r, TypeDesc t):
    cdef int ev, j, k, i
    cdef Py_ssize_t n
    cdef Slot* sl
    cdef Field* f
    cdef object obj
    cdef list lists
    cdef bint matched
    obj = new_message(t)
    ev = read_event(r, t, t.start)
    for j in range(t.nslots):
        sl = &t.slots[j]
        if sl.nmem == 0:
            continue
        f = &t.fields[sl.mem[0]]
        if sl.nmem == 1 and not f.is_list:
            if sl.min == 0:
                if ev == f.eid:
                    set_field(obj, f, dec_content(r, f))
                    ev = read_event(r, t, sl.full)
            elif sl.ch_empty and ev == -1:
                if r_bits(r, 3):
                    bad_event(r, -1)
                set_field(obj, f, _EMPTY_STR if f.mode == M_STR else _EMPTY_BYTES)
                ev = 0
            else:
                if ev != f.eid:
                    bad_event(r, ev)
                set_field(obj, f, dec_content(r, f))
                ev = read_event(r, t, sl.full)
            continue
        if sl.gmax == 1 and not f.is_list:
            matched = False
            for k in range(sl.nmem):
                f = &t.fields[sl.mem[k]]
                if ev == f.eid:
                    set_field(obj, f, dec_content(r, f))
                    ev = read_event(r, t, sl.full)
                    matched = True
                    break
            if not matched and sl.min > 0:
                bad_event(r, ev)
            continue
        lists = []
        for k in range(sl.nmem):
            lists.append([])
            set_field(obj, &t.fields[sl.mem[k]], lists[k])
        n = 0
        while True:
            matched = False
            for k in range(sl.nmem):
                f = &t.fields[sl.mem[k]]
                if ev == f.eid:
                    (<list>lists[k]).append(dec_content(r, f))
                    matched = True
                    break
            if not matched:
                break
            n += 1
            if sl.fmax >= 0 and sl.fmax != sl.gmax and n > sl.fmax:
                fail(r, _pyrt.too_many(n, sl.fmax, r.pos))
            ev = read_event(r, t, cat_state(sl, n))
        if n < sl.min:
            bad_event(r, ev)
    if ev != 0:
        bad_event(r, ev)
    return obj


cdef object dec_general(Reader* r, TypeDesc t):
    """A general grammar (three xmldsig types): productions carry their target state."""
    cdef int s = 0, ev, i
    cdef uint64_t code
    cdef Field* f
    cdef object obj = new_message(t)
    for i in range(t.nfields):
        if t.fields[i].is_list:
            set_field(obj, &t.fields[i], [])
    while True:
        code = r_bits(r, t.states[s].nbits)
        ev = t.states[s].dec[code]
        s = t.states[s].tgt[code]
        if ev == 0:
            return obj
        f = NULL
        for i in range(t.nfields):
            if t.fields[i].eid == ev:
                f = &t.fields[i]
                break
        if f == NULL or ev < 0:
            bad_event(r, ev)
        if f.is_list:
            (<list>get_field(obj, f)).append(dec_content(r, f))
        else:
            set_field(obj, f, dec_content(r, f))
        if s < 0:
            raise Fallback()  # a production without a target that is not EE: not in the tables


# --- documents -------------------------------------------------------------------------------

def decode_document(Universe u, data):
    """Decode a whole EXI stream: the message, or the pure codec's typed error. Fallback for
    input that is not bytes and documents of simple type."""
    cdef Reader r
    cdef uint64_t c
    if not PyBytes_Check(data):
        raise Fallback()
    r.data = <const uint8_t*>PyBytes_AS_STRING(data)
    r.nbits = PyBytes_GET_SIZE(data) * 8
    r.pos = 0
    r.top = NULL
    r.wide = False
    if r.nbits == 0:
        raise _pycodec.empty_input()
    c = r_bits(&r, 8)
    if c != 0x80:
        raise _pycodec.bad_header(c)
    if 8 + u.doc_nbits > r.nbits:
        raise _pycodec.no_document_element(r.nbits)
    c = r_bits(&r, u.doc_nbits)
    if c >= <uint64_t>u.nglobals:
        raise _pycodec.bad_document_code(c, u.nglobals, r.pos)
    desc = u.roots[c]
    if desc is None:
        raise Fallback()
    obj = dec_type(&r, <TypeDesc>desc)
    if r.nbits - r.pos >= 8:
        raise _pycodec.trailing_data(r.nbits, r.pos)
    return obj


def encode_document(Universe u, obj, element=None):
    """Encode a message as a whole EXI stream, or raise Fallback."""
    cdef Writer w
    if element is not None:
        raise Fallback()
    entry = u.by_class.get(type(obj))
    if entry is None:
        raise Fallback()
    w.cap = 256
    w.buf = <uint8_t*>malloc(w.cap)
    if w.buf == NULL:
        raise MemoryError()
    w.n = 0
    w.acc = 0
    w.nacc = 0
    try:
        w_bits(&w, 0x80, 8)
        w_bits(&w, <uint64_t>entry[0], u.doc_nbits)
        enc_type(&w, <TypeDesc>entry[1], obj)
        if w.nacc:
            w_bits(&w, 0, 8 - w.nacc)
        return PyBytes_FromStringAndSize(<char*>w.buf, w.n)
    finally:
        free(w.buf)
