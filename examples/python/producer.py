"""Publish one job to authrelay and wait for its result (the RabbitMQ RPC pattern).

AUTHRELAY_AMQP_URL and AUTHRELAY_AMQP_PREFIX say where authrelay listens (its own defaults);
TARGET_URL is the request to run; AUTH_PROFILE_ID, if set, the stored profile whose
credentials it gets (WORKSPACE_ID its workspace). Exit code: 0 succeeded, 1 another
outcome, 2 no result.
"""
import json
import os
import sys
import uuid

import pika

url = os.environ.get("AUTHRELAY_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
prefix = os.environ.get("AUTHRELAY_AMQP_PREFIX", "authrelay")
timeout_s = float(os.environ.get("TIMEOUT_S", "30"))
job = {
    "job_id": str(uuid.uuid4()),
    "workspace_id": os.environ.get("WORKSPACE_ID", "acme"),
    "phase": "during_call",
    "action_id": "example",
    "request": {"method": "GET", "url": os.environ.get("TARGET_URL", "https://api.example.com/v1/ping")},
}
if os.environ.get("AUTH_PROFILE_ID"):
    job["auth_profile_id"] = os.environ["AUTH_PROFILE_ID"]

connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
channel.confirm_delivery()  # basic_publish now waits for the broker and raises if no queue took the job
# A private reply queue, declared before publishing so that the reply cannot be missed.
reply_to = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
correlation_id = str(uuid.uuid4())
properties = pika.BasicProperties(
    content_type="application/json", delivery_mode=2, reply_to=reply_to, correlation_id=correlation_id
)
try:
    channel.basic_publish(f"{prefix}.actions", job["phase"], json.dumps(job), properties, mandatory=True)
except pika.exceptions.UnroutableError:
    print("no queue took the job: is authrelay running, with this AUTHRELAY_AMQP_PREFIX?", file=sys.stderr)
    sys.exit(2)
for method, props, body in channel.consume(reply_to, auto_ack=True, inactivity_timeout=timeout_s):
    if method is None:
        print(f"no result for job {job['job_id']} within {timeout_s} s", file=sys.stderr)
        sys.exit(2)
    if props.correlation_id == correlation_id:
        result = json.loads(body)
        print(json.dumps(result, indent=2))
        connection.close()
        sys.exit(0 if result["outcome"] == "succeeded" else 1)
