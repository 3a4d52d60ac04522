#!/usr/bin/env bash
# The README's test command: sets up what the tests need, then runs them.
#
# - The container tier needs a broker image. Where a Docker engine is
#   reachable and RUCKUS_CONTAINER_IMAGE is not set, the stand-in image
#   ruckus-tansu:local is built (scripts/build-tansu-image.sh); a failed build
#   fails the run. Without an engine the container tier reports itself
#   SKIPPED with the reason, never passed.
# - The black-box tier's Python client (confluent-kafka) is pip-installed.
# - Headless Chromium (apt) for the test that opens a run's picture.
# - check-jsonschema and kubernetes-validate (PyPI) to validate the nightly
#   workflow and the Kubernetes manifests against their schemas.
# - Then rustfmt and clippy (-D warnings), the crate cut (a service on the
#   rdkafka transport compiles no part of the harness), every test of the
#   workspace (nextest), and the doctests.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${RUCKUS_CONTAINER_IMAGE:-}" ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    bash scripts/build-tansu-image.sh
  else
    echo "test.sh: no Docker engine reachable: the container tier will be reported SKIPPED" >&2
  fi
fi

# The black-box tier's Python consumers need confluent-kafka (from PyPI; its
# wheels carry librdkafka). Without it those tests report themselves SKIPPED,
# never passed.
if command -v python3 >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore confluent-kafka \
    || echo "test.sh: could not install confluent-kafka: the Python black-box consumers will be SKIPPED" >&2
  # The schema validators for the nightly workflow and the Kubernetes
  # manifests (chaos/tests/deploy.rs); without them those tests are IGNORED.
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
      check-jsonschema kubernetes-validate \
    || echo "test.sh: could not install the schema validators: their tests will be IGNORED" >&2
fi

# The picture test loads a run's HTML page in headless Chromium (Debian's
# package). Without a browser that test reports itself IGNORED, never passed.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
      || echo "test.sh: could not install chromium: the browser test will be IGNORED" >&2
  else
    echo "test.sh: no chromium and no way to install it here: the browser test will be IGNORED" >&2
  fi
fi

# House rules first: formatting and lints (warnings are errors).
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# The crate cut: a service on the rdkafka transport (examples/service)
# compiles none of the test harness.
if cargo tree -p ruckus-example-service -e normal --prefix none --locked \
    | grep -E '^(turmoil|testcontainers|clap|ruckus-(sim|chaos|history|integration)) '; then
  echo "test.sh: ruckus-example-service pulls in the test harness (above)" >&2
  exit 1
fi
# ... and its engine carries none of the known-bad variants.
if cargo tree -p ruckus-example-service -e features -i ruckus-core --locked \
    | grep 'feature "known-bad"'; then
  echo "test.sh: ruckus-example-service builds ruckus-core with its known-bad variants" >&2
  exit 1
fi

cargo nextest run --workspace --locked --no-fail-fast
cargo test --workspace --locked --doc
