"""A local S3-compatible server for storage tests: moto's server mode on 127.0.0.1, never a cloud.

    with s3_server(buckets=("d4d",)) as endpoint:
        ShardDataset("s3://d4d/shards")           # pyarrow reaches it through AWS_ENDPOINT_URL

While it runs, the process environment points every S3 client (pyarrow, boto3, Ray workers
started meanwhile) at it, with dummy credentials; the previous environment is restored after.
"""

from __future__ import annotations

import contextlib
import logging
import os

#: The environment an S3 client needs to use the local server (the endpoint is added).
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
          "AWS_EC2_METADATA_DISABLED": "true"}


@contextlib.contextmanager
def s3_server(buckets: tuple[str, ...] = ()):
    """Start moto's S3 server on a free loopback port, create ``buckets``, point the environment
    at it; yields the endpoint URL (http://127.0.0.1:PORT)."""
    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {**S3_ENV, "AWS_ENDPOINT_URL": endpoint}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        fs = pafs.S3FileSystem(endpoint_override=endpoint, allow_bucket_creation=True)
        for bucket in buckets:
            fs.create_dir(bucket)
        yield endpoint
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()
