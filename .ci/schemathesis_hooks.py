"""schemathesis hooks for .ci/schemathesis.sh: send ZIP uploads as raw bytes.

schemathesis has no serializer for `application/zip`, so without this the
two ZIP upload operations (`POST /backup/import` and `/backup/import/preview`)
are not generated at all. Their body is `format: binary`: the generated
bytes go on the wire as they are.
"""

import schemathesis
from schemathesis.transport.serialization import serialize_binary


@schemathesis.serializer("application/zip")
def zip_bytes(ctx, value):
    return serialize_binary(value)
