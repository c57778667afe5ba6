"""moto's server, with S3's conditional writes made atomic as real S3 makes them.

moto 5.2.5 checks `If-None-Match: *` (and `If-Match`) on PutObject and
CompleteMultipartUpload, then stores the object, with no lock in between, on a threaded
server. Two create-only PUTs of one key that arrive together can both pass the check and
both be answered 200, the second object replacing the first. Real S3 lets exactly one win
(412 or 409 for the other). Delta commits rely on that: each version is one create-only PUT
of `_delta_log/<version>.json`, so with two writers on a busy machine moto silently dropped
a commit that both writers saw succeed (issue 17; `python3 scripts/moto_race.py PORT`
measures it: 9 double creates in 2,700 racing triples on stock moto under CPU load, 0 with
this launcher).

This launcher serialises moto's S3 object writes (PUT, POST, DELETE on keys) behind one
lock, so a conditional write's check and its store happen as one step, then runs moto's
own `moto_server` entry point with the same arguments. Reads are not serialised. Nothing
else of moto changes.
"""

import sys
import threading

from moto.s3.responses import S3Response
from moto.server import main

_writes = threading.Lock()
_unlocked = S3Response._key_response


def _key_response(self, request, full_url):
    if request.method in ("GET", "HEAD"):
        return _unlocked(self, request, full_url)
    with _writes:
        return _unlocked(self, request, full_url)


S3Response._key_response = _key_response

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
