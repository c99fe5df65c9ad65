"""Unit tests: framing, token encoders (byte-exact against MS-TDS examples),
type encoding, parameter decoding, declarations, negotiation."""
from __future__ import annotations

import datetime as dt
import decimal
import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirrorkit_lab.engine.results import Column, Message, ResultSet, StatementDone
from mirrorkit_lab.tds import prelogin as P
from mirrorkit_lab.tds import tokens as K
from mirrorkit_lab.tds.login7 import (
    TDS71, TDS71_SP1, TDS72, TDS73A, TDS73B, TDS74, deobfuscate_password, negotiate_version,
    parse_login7,
)
from mirrorkit_lab.tds.packets import (
    MessageReader, PacketWriter, ProtocolError, PeerClosed, frame,
)
from mirrorkit_lab.engine.declarations import Declared, parse_declaration
from mirrorkit_lab.tds.params import Reader, UnsupportedParameter, read_param_value
from mirrorkit_lab.tds.response import MetaCache, ResponseBuilder
from mirrorkit_lab.tds.rpc import parse_rpc, skip_all_headers
from mirrorkit_lab.tds.types import EncodeError, column_type
from raw_client import login7_payload, obfuscate


def h(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", "").replace("\n", ""))


# --------------------------------------------------------------------------- framing

def reader_over(data: bytes, step: int = 7) -> MessageReader:
    chunks = [data[i:i + step] for i in range(0, len(data), step)]

    def recv(n):
        return chunks.pop(0) if chunks else b""
    return MessageReader(recv)


def test_frame_splits_at_packet_size():
    payload = bytes(range(256)) * 40          # 10240 bytes
    out = frame(0x04, payload, 4096, spid=55)
    headers = []
    pos = 0
    body = b""
    while pos < len(out):
        t, st_, ln, spid, pid, win = struct.unpack_from(">BBHHBB", out, pos)
        headers.append((t, st_, ln, spid, pid))
        body += out[pos + 8:pos + ln]
        pos += ln
    assert body == payload
    assert headers == [(4, 0, 4096, 55, 1), (4, 0, 4096, 55, 2), (4, 1, 10240 - 2 * 4088 + 8, 55, 3)]


def test_reader_reassembles_and_splits_messages():
    m1 = frame(0x01, b"A" * 5000, 512)
    m2 = frame(0x06, b"")
    r = reader_over(m1 + m2)
    a = r.read_message()
    assert (a.type, a.payload) == (0x01, b"A" * 5000)
    b = r.read_message()
    assert (b.type, b.payload) == (0x06, b"")
    assert r.read_message() is None


def test_reader_rejects_bad_input():
    with pytest.raises(ProtocolError):
        reader_over(b"\x01\x01\x00\x04\x00\x00\x01\x00").read_message()   # length < 8
    with pytest.raises(PeerClosed):
        reader_over(b"\x01\x01\x00\x20\x00\x00\x01\x00abc").read_message()
    with pytest.raises(ProtocolError):                                   # type changes mid-message
        reader_over(b"\x01\x00\x00\x09\x00\x00\x01\x00a" + b"\x03\x01\x00\x09\x00\x00\x01\x00b").read_message()
    big = MessageReader(lambda n, d=[frame(0x01, b"x" * 3000, 512)]: d.pop() if d else b"", 2000)
    with pytest.raises(ProtocolError):
        big.read_message()


def test_reader_ignore_bit_and_attention_mid_message():
    r = reader_over(b"\x01\x00\x00\x09\x00\x00\x01\x00a" + b"\x01\x03\x00\x08\x00\x00\x02\x00")
    m = r.read_message()
    assert m.ignore and m.payload == b"a"
    r = reader_over(b"\x01\x00\x00\x09\x00\x00\x01\x00a" + frame(0x06, b""))
    assert r.read_message().type == 0x06


def test_packet_writer_streams_and_keeps_eom_for_last():
    sent = []
    w = PacketWriter(sent.append, 512, 9)
    w.buf += b"x" * 504 * 3          # exactly three packets' worth
    w.flush()
    w.finish()
    data = b"".join(sent)
    sizes, statuses = [], []
    pos = 0
    while pos < len(data):
        ln = struct.unpack_from(">H", data, pos + 2)[0]
        sizes.append(ln)
        statuses.append(data[pos + 1])
        pos += ln
    assert statuses == [0, 0, 1] and sizes == [512, 512, 512]


# --------------------------------------------------------------------------- tokens (MS-TDS examples)

def test_select_foo_as_bar_example():
    # MS-TDS 4.7 "SQL Batch Server Response" for: select 'foo' as 'bar'
    vc3 = column_type("varchar(3)", TDS74)
    stream = (K.colmetadata([("bar", vc3, 0x0020)], TDS74) + b"\xd1" + vc3.encode("foo")
              + K.done(K.DONE, K.DONE_COUNT, K.CMD_SELECT, 1, TDS74))
    assert stream == h("81 0100 00000000 2000 A7 0300 0904D00034 03 6200 6100 7200"
                       "D1 0300 666F6F FD 1000 C100 0100000000000000")


def test_login_response_example():
    # MS-TDS 4.4 "Login Response" (TDS 7.2), byte for byte including the header.
    payload = b"".join([
        K.env_database("master", "master"),
        K.message(5701, 2, 0, "Changed database context to 'master'.", "", "", 0, TDS72),
        K.env_collation(),
        K.env_language("us_english"),
        K.env_packet_size(4096, 4096),
        K.message(5703, 1, 0, "Changed language setting to us_english.", "", "", 0, TDS72),
        K.loginack(TDS72, "Microsoft SQL Server\0\0", (0, 0, 0)),
        K.done(K.DONE, 0, 0, 0, TDS72),
    ])
    expected = h("""
        04 01 01 61 00 00 01 00 E3 1B 00 01 06 6D 00 61 00 73 00 74 00 65 00 72 00 06 6D 00 61 00
        73 00 74 00 65 00 72 00 AB 58 00 45 16 00 00 02 00 25 00 43 00 68 00 61 00 6E 00 67 00 65
        00 64 00 20 00 64 00 61 00 74 00 61 00 62 00 61 00 73 00 65 00 20 00 63 00 6F 00 6E 00 74
        00 65 00 78 00 74 00 20 00 74 00 6F 00 20 00 27 00 6D 00 61 00 73 00 74 00 65 00 72 00 27
        00 2E 00 00 00 00 00 00 00 E3 08 00 07 05 09 04 D0 00 34 00 E3 17 00 02 0A 75 00 73 00 5F
        00 65 00 6E 00 67 00 6C 00 69 00 73 00 68 00 00 E3 13 00 04 04 34 00 30 00 39 00 36 00 04
        34 00 30 00 39 00 36 00 AB 5C 00 47 16 00 00 01 00 27 00 43 00 68 00 61 00 6E 00 67 00 65
        00 64 00 20 00 6C 00 61 00 6E 00 67 00 75 00 61 00 67 00 65 00 20 00 73 00 65 00 74 00 74
        00 69 00 6E 00 67 00 20 00 74 00 6F 00 20 00 75 00 73 00 5F 00 65 00 6E 00 67 00 6C 00 69
        00 73 00 68 00 2E 00 00 00 00 00 00 00 AD 36 00 01 72 09 00 02 16 4D 00 69 00 63 00 72 00
        6F 00 73 00 6F 00 66 00 74 00 20 00 53 00 51 00 4C 00 20 00 53 00 65 00 72 00 76 00 65 00
        72 00 00 00 00 00 00 00 00 00 FD 00 00 00 00 00 00 00 00 00 00 00 00""")
    assert frame(0x04, payload) == expected


def test_rpc_response_example():
    # MS-TDS 4.9 "RPC Server Response".
    stream = (K.done(K.DONEINPROC, K.DONE_MORE | K.DONE_COUNT, K.CMD_SELECT, 1, TDS74)
              + K.returnstatus(0) + K.done(K.DONEPROC, 0, K.CMD_RPC, 0, TDS74))
    assert frame(0x04, stream) == h("04 01 00 27 00 00 01 00 FF 11 00 C1 00 01 00 00 00 00 00 00 00"
                                    "79 00 00 00 00 FE 00 00 E0 00 00 00 00 00 00 00 00 00")


def test_version_dependent_layouts():
    assert K.done(K.DONE, 0x10, 0, 5, TDS71) == h("FD 1000 0000 05000000")
    assert K.message(1, 2, 16, "x", "", "", 7, TDS71)[-2:] == b"\x07\x00"
    assert K.message(1, 2, 16, "x", "", "", 7, TDS74)[-4:] == b"\x07\x00\x00\x00"
    assert K.colmetadata([("a", column_type("int", TDS71), 1)], TDS71) == h("81 0100 0000 0100 2604 01 6100")
    assert K.env_transaction("begin", 0x1122) == h("E3 0B00 08 08 2211000000000000 00")
    assert K.env_transaction("rollback", 0x1122) == h("E3 0B00 0A 00 08 2211000000000000")
    assert K.attention_ack(TDS74) == h("FD 2000 0000 0000000000000000")
    ret = K.returnvalue(0, "", column_type("int", TDS74), 7, TDS74)
    assert ret == h("AC 0000 00 01 00000000 0000 2604 04 07000000")


# --------------------------------------------------------------------------- result types

@pytest.mark.parametrize("sqltype,value,typeinfo,encoded", [
    ("int", 1, "2604", "0401000000"),
    ("int", None, "2604", "00"),
    ("tinyint", 255, "2601", "01ff"),
    ("smallint", -2, "2602", "02feff"),
    ("bigint", 2 ** 40, "2608", "080000000000010000"),
    ("bit", True, "6801", "0101"),
    ("float", 1.0, "6d08", "08000000000000f03f"),
    ("real", 1.0, "6d04", "040000803f"),
    ("decimal(5,2)", decimal.Decimal("-1.5"), "6a050502", "0500" + "96000000"),
    ("numeric(38,0)", 1, "6c112600", "1101" + "01" + "00" * 15),
    ("money", decimal.Decimal("1.0001"), "6e08", "08" + "00000000" + "11270000"),
    ("nvarchar(2)", "ab", "e70400" + "0904d00034", "04006100" + "6200"),
    ("nvarchar(max)", "ab", "e7ffff" + "0904d00034", "0400000000000000" + "04000000" + "61006200" + "00000000"),
    ("nvarchar(max)", None, "e7ffff0904d00034", "ffffffffffffffff"),
    ("varchar(3)", "é", "a703000904d00034", "0100e9"),
    ("char(3)", "a", "af03000904d00034", "0300612020"),
    ("varbinary(4)", b"\x01", "a50400", "010001"),
    ("binary(2)", b"\x01", "ad0200", "02000100"),
    ("date", dt.date(1, 1, 2), "28", "03010000"),
    ("datetime", dt.datetime(1900, 1, 2, 0, 0, 1), "6f08", "08" + "01000000" + "2c010000"),
    ("datetime2(7)", dt.datetime(1, 1, 1, 0, 0, 0, 1), "2a07", "08" + "0a00000000" + "000000"),
    ("time(0)", dt.time(0, 0, 2), "2900", "03020000"),
    ("uniqueidentifier", uuid.UUID(int=1), "2410", "10" + uuid.UUID(int=1).bytes_le.hex()),
    ("datetimeoffset(0)", dt.datetime(2000, 1, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
     "2b00", "08" + "000000" + "07240b" + "3c00"),
])
def test_column_type_encoding(sqltype, value, typeinfo, encoded):
    ct = column_type(sqltype, TDS74)
    assert ct.typeinfo.hex() == typeinfo
    assert ct.encode(value).hex() == encoded


def test_downlevel_type_forms():
    assert column_type("datetime2(7)", TDS72).typeinfo[0] == 0xE7
    assert column_type("date", TDS72).encode(dt.date(2020, 1, 2)) == b"\x14\x00" + "2020-01-02".encode("utf-16-le")
    nt = column_type("nvarchar(max)", TDS71)
    assert nt.typeinfo[0] == 0x63 and nt.tablename == b"\x00\x00"
    assert nt.encode(None) == b"\x00"
    assert nt.encode("a")[-6:] == b"\x02\x00\x00\x00a\x00"


def test_encode_errors():
    with pytest.raises(EncodeError):
        column_type("tinyint", TDS74).encode(256)
    with pytest.raises(EncodeError):
        column_type("decimal(3,0)", TDS74).encode(1000)
    with pytest.raises(EncodeError):
        column_type("geometryx", TDS74)
    assert column_type("nvarchar(2)", TDS74).encode("abcd") == b"\x04\x00a\x00b\x00"   # truncated


def build(events, in_rpc=False) -> bytes:
    sent = []
    w = PacketWriter(sent.append, 4096, 1)
    b = ResponseBuilder(w, TDS74, "SRV", MetaCache(TDS74), False)
    b.events(events, in_rpc=in_rpc)
    if not in_rpc:
        b.finish_batch()
    w.finish()
    return b"".join(sent)[8:]


def test_statement_done_after_result_set_is_its_done():
    rs = ResultSet([Column("a", "int")], [(1,), (2,)])
    meta_rows = build([rs])[:-13]
    # One DONE per SELECT, with the engine's count (or none, as with NOCOUNT ON).
    assert build([rs, StatementDone(rowcount=2)]) == meta_rows + K.done(K.DONE, K.DONE_COUNT, K.CMD_SELECT, 2, TDS74)
    assert build([rs, StatementDone()]) == meta_rows + K.done(K.DONE, 0, K.CMD_SELECT, 0, TDS74)
    assert build([rs]) == meta_rows + K.done(K.DONE, K.DONE_COUNT, K.CMD_SELECT, 2, TDS74)
    two = build([rs, StatementDone(rowcount=2), rs, StatementDone(rowcount=2)])
    assert two == (meta_rows + K.done(K.DONE, K.DONE_COUNT | K.DONE_MORE, K.CMD_SELECT, 2, TDS74)
                   + meta_rows + K.done(K.DONE, K.DONE_COUNT, K.CMD_SELECT, 2, TDS74))
    inproc = build([rs, StatementDone(rowcount=2)], in_rpc=True)
    assert inproc == meta_rows + K.done(K.DONEINPROC, K.DONE_COUNT | K.DONE_MORE, K.CMD_SELECT, 2, TDS74)


def test_response_builder_final_done_and_error_flags():
    sent = []
    w = PacketWriter(sent.append, 4096, 1)
    b = ResponseBuilder(w, TDS74, "SRV", MetaCache(TDS74), False)
    b.events([ResultSet([Column("a", "int")], [(1,)]), Message(1, 16, 1, "bad"),
              StatementDone(rowcount=None)], in_rpc=False)
    b.finish_batch()
    w.finish()
    data = b"".join(sent)[8:]
    assert data.endswith(K.done(K.DONE, K.DONE_ERROR, 0, 0, TDS74))
    assert K.done(K.DONE, K.DONE_MORE | K.DONE_COUNT, K.CMD_SELECT, 1, TDS74) in data


# --------------------------------------------------------------------------- parameters

def decode(hexstr: str):
    return read_param_value(Reader(h(hexstr)))


@pytest.mark.parametrize("wire,expected", [
    ("2604 04 05000000", ("int", 5)),
    ("2608 00", ("bigint", None)),
    ("2601 01 ff", ("tinyint", 255)),
    ("6801 01 01", ("bit", True)),
    ("6d08 08 000000000000f03f", ("float", 1.0)),
    ("38 2a000000", ("int", 42)),
    ("7f 0100000000000000", ("bigint", 1)),
    ("32 01", ("bit", True)),
    ("3e 000000000000f03f", ("float", 1.0)),
    ("3c 00000000 10270000", ("money", decimal.Decimal("1.0000"))),
    # FreeTDS: NUMERIC(5,2) with only len-1 = 3 magnitude bytes.
    ("6c 05 05 02 04 00 393000", ("numeric(5,2)", decimal.Decimal("-123.45"))),
    ("6a 11 26 00 11 01" + "ff" * 16, ("decimal(38,0)", decimal.Decimal(2 ** 128 - 1))),
    ("e7 0400 0904d00034 0400 68006900", ("nvarchar(2)", "hi")),
    ("e7 ffff 0904d00034 feffffffffffffff 04000000 68006900 00000000", ("nvarchar(max)", "hi")),
    ("e7 ffff 0904d00034 0400000000000000 02000000 6800 02000000 6900 00000000", ("nvarchar(max)", "hi")),
    ("e7 ffff 0904d00034 ffffffffffffffff", ("nvarchar(max)", None)),
    ("a7 0100 0904d00034 ffff", ("varchar(1)", None)),
    ("a7 0200 0904d00034 0100 e9", ("varchar(2)", "é")),
    ("a5 0400 0200 0102", ("varbinary(4)", b"\x01\x02")),
    ("63 feffff7f 0904d00034 04000000 68006900", ("ntext", "hi")),
    ("63 00000000 0904d00034 ffffffff", ("ntext", None)),
    ("28 03 010000", ("date", dt.date(1, 1, 2))),
    ("2a 07 08 0a00000000 000000", ("datetime2(7)", dt.datetime(1, 1, 1, 0, 0, 0, 1))),
    ("2a 06 08 0100000000 000000", ("datetime2(6)", dt.datetime(1, 1, 1, 0, 0, 0, 1))),
    ("29 00 03 020000", ("time(0)", dt.time(0, 0, 2))),
    ("6f 08 08 01000000 2c010000", ("datetime", dt.datetime(1900, 1, 2, 0, 0, 1))),
    ("6f 04 04 0100 3c00", ("smalldatetime", dt.datetime(1900, 1, 2, 1, 0))),
    ("24 10 10" + uuid.UUID(int=5).bytes_le.hex(), ("uniqueidentifier", uuid.UUID(int=5))),
])
def test_param_decoding(wire, expected):
    assert decode(wire) == expected


def test_datetimeoffset_param():
    sqltype, v = decode("2b 00 08 000000 07240b 3c00")
    assert sqltype == "datetimeoffset(0)"
    assert v == dt.datetime(2000, 1, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert v.utcoffset() == dt.timedelta(hours=1)


def test_param_errors():
    with pytest.raises(UnsupportedParameter):
        decode("62 401f0000 00000000")
    with pytest.raises(ProtocolError):
        decode("2604 04 0500")
    with pytest.raises(ProtocolError):
        decode("99")


def test_parse_declaration():
    assert list(parse_declaration("@P1 INT,@P2 NVARCHAR(2)")) == [
        Declared("@P1", "int", False), Declared("@P2", "nvarchar(2)", False)]
    assert list(parse_declaration("@a decimal(10, 2) OUTPUT, @b varchar(max) out,@c int = 5")) == [
        Declared("@a", "decimal(10, 2)", True), Declared("@b", "varchar(max)", True),
        Declared("@c", "int", False)]
    assert parse_declaration("") == () and parse_declaration(None) == ()


def test_parse_rpc_with_separators_and_headers():
    allh = struct.pack("<IIHQI", 22, 18, 2, 0, 1)
    one = struct.pack("<HH", 0xFFFF, 15) + b"\0\0" + b"\x00\x00\x26\x04\x04\x01\x00\x00\x00"
    two = struct.pack("<H", 4) + "proc".encode("utf-16-le") + b"\0\0" + b"\x01@\x00\x01\x26\x04\x00"
    payload = allh + one + b"\xff" + two
    reqs = parse_rpc(payload, skip_all_headers(payload, TDS74), TDS74)
    assert [(r.proc_id, r.name) for r in reqs] == [(15, "sp_unprepare"), (None, "proc")]
    assert reqs[0].params[0].value == 1 and reqs[1].params[0].output
    # TDS 7.1: no ALL_HEADERS, 0x80 separator
    reqs = parse_rpc(one + b"\x80" + two, skip_all_headers(one + b"\x80" + two, TDS71), TDS71)
    assert len(reqs) == 2


# --------------------------------------------------------------------------- login and negotiation

def test_password_obfuscation_round_trip():
    assert deobfuscate_password(obfuscate("Secret1!")) == "Secret1!"
    assert deobfuscate_password(obfuscate("pä$$wörd☃")) == "pä$$wörd☃"


def test_parse_login7():
    login = parse_login7(login7_payload(user="bob", password="pw", database="db1"))
    assert (login.username, login.password, login.database, login.appname, login.library) == (
        "bob", "pw", "db1", "rawapp", "rawlib")
    assert login.tds_version == TDS74 and login.packet_size == 4096 and not login.integrated_security
    feats = parse_login7(login7_payload(features=b"\x0a\x01\x00\x00\x00\x01\xff")).features
    assert feats == {0x0A: b"\x01"}


@pytest.mark.parametrize("client,reply", [
    (0x74000004, TDS74), (0x75000000, TDS74), (0x08000000, TDS74), (0x730B0003, TDS73B),
    (0x730A0003, TDS73A), (0x72090002, TDS72), (0x71000001, TDS71_SP1), (0x71000000, TDS71),
    (0x07010000, TDS71), (0x70000000, None),
])
def test_version_negotiation(client, reply):
    assert negotiate_version(client) == reply


@pytest.mark.parametrize("mode,tls,client,reply,action", [
    ("off", True, 0, 2, "plain"), ("off", True, 1, 2, "close"), ("off", True, 3, 2, "close"),
    ("optional", False, 0, 2, "plain"), ("optional", False, 1, 2, "close"),
    ("optional", True, 0, 0, "login_only"), ("optional", True, 1, 1, "full"),
    ("optional", True, 2, 2, "plain"), ("optional", True, 3, 1, "full"),
    ("required", True, 0, 3, "full"), ("required", True, 1, 1, "full"),
    ("required", True, 2, 3, "close"), ("required", True, 3, 1, "full"),
    ("optional", True, 0x81, 1, "full"),
])
def test_encryption_matrix(mode, tls, client, reply, action):
    assert P.negotiate({P.OPT_ENCRYPTION: bytes([client])}, mode, tls) == (reply, action)


# --------------------------------------------------------------------------- parser robustness

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_parsers_only_raise_protocol_errors(data):
    for fn in (P.parse_prelogin, parse_login7,
               lambda d: parse_rpc(d, skip_all_headers(d, TDS74), TDS74),
               lambda d: parse_rpc(d, 0, TDS71)):
        try:
            fn(data)
        except (ProtocolError, UnsupportedParameter):
            pass


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=94, max_size=300))
def test_login7_mutations(data):
    base = bytearray(login7_payload())
    for i, b in enumerate(data[:len(base)]):
        if b % 7 == 0:
            base[i] = b
    try:
        parse_login7(bytes(base))
    except ProtocolError:
        pass
