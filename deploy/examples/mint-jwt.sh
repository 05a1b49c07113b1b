#!/usr/bin/env bash
# Mints a demo JWT for the docker compose walk-through, signed with demo-idp.key.pem (whose public key is
# idp.jwks.json, the JWKS the example gateway file's JWT provider reads). Needs only openssl.
#   TOKEN=$(deploy/examples/mint-jwt.sh)
#   curl -H "Authorization: Bearer $TOKEN" localhost:8080/...
# Settings (environment): ISS, AUD, SUB, CLIENT, SCOPE, TTL (seconds, default 900: under the provider's max_lifetime).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
iss="${ISS:-https://idp.acme.example}"
aud="${AUD:-orders-api}"
sub="${SUB:-alice}"
client="${CLIENT:-demo-app}"
scope="${SCOPE:-orders:read orders:write}"
ttl="${TTL:-900}"
now="$(date +%s)"

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
header="$(printf '{"alg":"RS256","typ":"JWT","kid":"acme-demo-1"}' | b64url)"
payload="$(printf '{"iss":"%s","aud":"%s","sub":"%s","azp":"%s","scope":"%s","iat":%d,"nbf":%d,"exp":%d}' \
  "$iss" "$aud" "$sub" "$client" "$scope" "$now" "$now" "$((now + ttl))" | b64url)"
signature="$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$here/demo-idp.key.pem" -binary | b64url)"
printf '%s.%s.%s\n' "$header" "$payload" "$signature"
