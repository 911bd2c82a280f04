#!/usr/bin/python3
"""A SOAP control call signed as README's "Signed control requests" says, written only from
that description (Python's standard library: hashlib, hmac, http.client): what a third-party
control point holding the control key does. Run inside the test's network namespace.

  signed_call.py --url http://10.99.1.11:49152/control/domain/UUID --service TYPE --action NAME
                 --key-file FILE [--identity NAME] [--arg NAME=VALUE]... [--age SECONDS]
                 [--tamper] [--times N] [--unsigned]

--age signs with a timestamp that many seconds in the past; --tamper sends the signed body
with a newline added (still a valid envelope); --times sends the very same request (same
nonce) N times; --unsigned sends no signature. Prints one line per request: `STATUS <code> <UPnP errorCode or ->`.
"""

import argparse
import hashlib
import hmac
import http.client
import re
import secrets
import time
import urllib.parse


def envelope(service, action, arguments):
    inner = "".join("<%s>%s</%s>" % (n, v, n) for n, v in arguments)
    return (
        '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
        '<u:%s xmlns:u="%s">%s</u:%s></s:Body></s:Envelope>' % (action, service, inner, action)
    ).encode()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--action", required=True)
    parser.add_argument("--key-file", required=True)
    parser.add_argument("--identity", default="third-party")
    parser.add_argument("--arg", action="append", default=[])
    parser.add_argument("--age", type=int, default=0)
    parser.add_argument("--tamper", action="store_true")
    parser.add_argument("--times", type=int, default=1)
    parser.add_argument("--unsigned", action="store_true")
    args = parser.parse_args()

    url = urllib.parse.urlsplit(args.url)
    target = url.path + ("?" + url.query if url.query else "")
    host = url.netloc
    arguments = [tuple(a.split("=", 1)) for a in args.arg]
    body = envelope(args.service, args.action, arguments)
    soap_action = '"%s#%s"' % (args.service, args.action)
    key = bytes.fromhex(open(args.key_file).read().strip())
    timestamp = int(time.time()) - args.age
    nonce = secrets.token_hex(16)
    canonical = "\n".join(
        [
            "xenplug-signature-1",
            "POST",
            target,
            host,
            soap_action,
            hashlib.sha256(body).hexdigest(),
            str(timestamp),
            nonce,
            args.identity,
        ]
    ) + "\n"
    mac = hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()
    headers = {
        "Host": host,
        "Content-Type": 'text/xml; charset="utf-8"',
        "SOAPACTION": soap_action,
    }
    if not args.unsigned:
        headers["X-Xenplug-Signature"] = "v=1 t=%d n=%s id=%s s=%s" % (
            timestamp, nonce, args.identity, mac)
    sent = body + b"\n" if args.tamper else body
    for _ in range(args.times):
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        connection.request("POST", target, body=sent, headers=headers)
        response = connection.getresponse()
        text = response.read().decode(errors="replace")
        code = re.search(r"<errorCode>(\d+)</errorCode>", text)
        print("STATUS %d %s" % (response.status, code.group(1) if code else "-"), flush=True)
        connection.close()


if __name__ == "__main__":
    main()
