"""The ``v2h`` command line.

    v2h exi decode --schema iso20_dc 8034…        # JSON on stdout (--xml for XML)
    v2h exi encode --schema iso20_dc < msg.json   # hex on stdout

Errors print one line on stderr and exit with status 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import json
import sys


def _read_hex(arg: str) -> bytes:
    text = sys.stdin.read() if arg == "-" else arg
    text = "".join(text.split())
    if text.lower().startswith("0x"):
        text = text[2:]
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError("input is not hexadecimal") from None


def _cmd_exi(args: argparse.Namespace) -> int:
    from iso15118 import exi

    if args.action == "decode":
        data = _read_hex(args.data)
        msg = exi.decode_fragment(data, args.schema) if args.fragment else exi.decode(data, args.schema)
        if args.xml:
            sys.stdout.write(exi.to_xml(msg, args.schema))
        else:
            json.dump(exi.to_dict(msg, args.schema), sys.stdout, indent=1, ensure_ascii=False)
            sys.stdout.write("\n")
        return 0
    text = sys.stdin.read()
    if args.xml:
        msg = exi.from_xml(text, args.schema)
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"input is not JSON: {e}") from None
        msg = exi.from_dict(doc, args.schema)
    data = exi.encode_fragment(msg, args.schema) if args.fragment else exi.encode(msg, args.schema)
    print(data.hex())
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="v2h", description="v2h: the car powers the house")
    sub = ap.add_subparsers(dest="command", required=True)
    p_exi = sub.add_parser("exi", help="EXI codec: decode and encode V2G messages")
    exi_sub = p_exi.add_subparsers(dest="action", required=True)
    for name in ("decode", "encode"):
        p = exi_sub.add_parser(name)
        p.add_argument("--schema", required=True,
                       help="apphand, din, iso2, iso20_cm, iso20_dc, iso20_ac, iso20_wpt, iso20_acdp, "
                            "xmldsig, or a message namespace")
        p.add_argument("--xml", action="store_true", help="XML instead of JSON")
        p.add_argument("--fragment", action="store_true", help="an EXI fragment (signature digests)")
        if name == "decode":
            p.add_argument("data", help="EXI as hex, or - to read hex from stdin")
    p_exi.set_defaults(func=_cmd_exi)

    p_pki = sub.add_parser("pki", help="the V2G test PKI")
    pki_sub = p_pki.add_subparsers(dest="action", required=True)
    p_init = pki_sub.add_parser("init", help="create a complete test PKI in DIR")
    p_init.add_argument("dir")
    p_show = pki_sub.add_parser("show", help="print a certificate or chain (PEM or DER) readably")
    p_show.add_argument("file")
    p_pki.set_defaults(func=_cmd_pki)
    return ap


def _cmd_pki(args: argparse.Namespace) -> int:
    from iso15118 import pki

    if args.action == "init":
        sys.stdout.write(pki.init_pki(args.dir))
        return 0
    try:
        data = open(args.file, "rb").read()
    except OSError as e:
        raise ValueError(f"cannot read {args.file}: {e.strerror}") from None
    sys.stdout.write(pki.describe(data))
    return 0


def main(argv: list[str] | None = None) -> int:
    from iso15118.exi import ExiError
    from iso15118.pki import ChainError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ExiError, ChainError, ValueError) as e:
        print(f"v2h {args.command}: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
