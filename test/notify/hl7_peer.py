#!/usr/bin/env python3
"""An MLLP receiver built on an independent HL7 v2 implementation (Debian's python3-hl7).

Parses every message it receives with python-hl7, appends what it read to a JSON-lines file and
answers with the acknowledgements the test asks for:

  hl7_peer.py --port N --record out.jsonl --answers AE,AA

`--answers` is consumed one per message (the last one repeats); an answer is AA, AE, AR, CA or
"CA+AA" (a commit acknowledgement, then the application one on the same connection), or "none"
(read the message, answer nothing). Prints "LISTENING <port>" once it accepts connections.
"""
import argparse
import asyncio
import json
import ssl
import sys

import hl7
import hl7.mllp


def get(message, key):
    """A field/component by python-hl7's accessor key ("PID.F5.R1.C2"), unescaped; "" when absent."""
    try:
        return message.unescape(str(message[key]))
    except (IndexError, KeyError):
        return ""


def fields_of(message):
    """Every segment as [name, [field 1 ..]], each field unescaped by python-hl7."""
    out = []
    for seg in message:
        name = str(seg[0])
        fields = []
        for i in range(1, len(seg)):
            raw = str(seg[i])
            # MSH-1/MSH-2 are the delimiters themselves: never unescaped.
            fields.append(raw if name == "MSH" and i <= 2 else message.unescape(raw))
        out.append([name, fields])
    return out


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--record", required=True)
    ap.add_argument("--answers", default="AA")
    ap.add_argument("--tls-cert", help="PEM certificate (with --tls-key): accept MLLP over TLS only")
    ap.add_argument("--tls-key")
    args = ap.parse_args()
    answers = args.answers.split(",")

    async def on_connection(reader, writer):
        try:
            while not writer.is_closing():
                message = await reader.readmessage()
                answer = answers.pop(0) if len(answers) > 1 else answers[0]
                entry = {
                    "answer": answer,
                    "controlId": str(message.segment("MSH")(10)),
                    "messageType": str(message.segment("MSH")(9)),
                    "segments": fields_of(message),
                    # Structured reads through python-hl7's accessors (1-based, as HL7 counts).
                    "patientName": get(message, "PID.F5"),
                    "patientFamily": get(message, "PID.F5.R1.C1"),
                    "patientGiven": get(message, "PID.F5.R1.C2"),
                    "charset": get(message, "MSH.F18"),
                    "obx": [
                        {
                            "code": str(s(3)(1)(1)), "system": str(s(3)(1)(3)), "meaning": message.unescape(str(s(3)(1)(2))),
                            "type": str(s(2)), "value": message.unescape(str(s(5))), "flag": str(s(8)),
                        }
                        for s in message.segments("OBX")
                    ],
                }
                with open(args.record, "a", encoding="utf-8") as f:
                    f.write(json.dumps(entry, ensure_ascii=False) + "\n")
                for code in answer.split("+"):
                    if code == "none":
                        continue
                    writer.writemessage(message.create_ack(ack_code=code))
                    await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        except Exception as err:  # a peer that dies silently would look like a network fault
            print(f"hl7 peer: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            raise
        finally:
            writer.close()

    ssl_context = None
    if args.tls_cert:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
    server = await hl7.mllp.start_hl7_server(on_connection, host=args.host, port=args.port, encoding="utf-8", ssl=ssl_context)
    print(f"LISTENING {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
