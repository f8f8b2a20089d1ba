#!/bin/sh
# The quick start's demo (docker-compose.yml, service `demo`): create a bearer
# Auth Profile, send a during-call job that uses it to the echo target with
# `authrelay send`, and print the result. The echo answers with the request it
# received, so the result shows the Authorization header arrived — as
# "Bearer [REDACTED]": authrelay redacts every secret it applied from what it
# publishes. Nothing here prints the token.
#
# Needs `authrelay` on the PATH and its configuration in the environment (the
# database, the broker, and the master key: the same state directory or
# AUTHRELAY_MASTER_KEYS as the running authrelay). DEMO_TARGET_URL: the echo
# target; DEMO_TOKEN: the profile's token (default: a random one);
# DEMO_WORKSPACE: default `demo`. Exits as `authrelay send` does: 0 succeeded,
# 1 another outcome, 2 no result.
set -eu

target=${DEMO_TARGET_URL:?set DEMO_TARGET_URL to the echo target}
workspace=${DEMO_WORKSPACE:-demo}
token=${DEMO_TOKEN:-demo-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
first_id() { sed -n 's/^ *"id": "\([^"]*\)".*/\1/p' | head -n 1; }

# The profile: created on the first run, reused after (its token is never shown).
id=$(authrelay profiles list -w "$workspace" --q "Demo CRM" | first_id)
if [ -z "$id" ]; then
    id=$(printf '{"token": "%s"}\n' "$token" |
        authrelay profiles create -w "$workspace" --name "Demo CRM" --type bearer --config-file - | first_id)
    echo "demo: created the bearer profile \"Demo CRM\" ($id) in workspace $workspace"
else
    echo "demo: reusing the bearer profile \"Demo CRM\" ($id) in workspace $workspace"
fi

echo "demo: authrelay send --phase during_call - (a POST to $target with that profile)"
code=0
result=$(authrelay send --phase during_call - <<JOB
{"workspace_id": "$workspace", "action_id": "demo-crm-lookup", "call_id": "demo-call-1",
 "auth_profile_id": "$id",
 "request": {"method": "POST", "url": "$target", "body": {"caller": "+15550100"}}}
JOB
) || code=$?
printf '%s\n' "$result"
if printf '%s' "$result" | grep -q '"authorization": "Bearer \[REDACTED\]"'; then
    echo "demo: the target received the profile's Authorization header; the result shows it as [REDACTED]"
fi
exit "$code"
