# sluice developer entry points. `make test` is exactly what CI runs.

SHELL := /bin/bash
GO ?= go
# Flags for test-unit / test-integration (CI: deploy/test.sh uses the same).
GOTESTFLAGS ?= -race -count=1
# make bench BENCH=Produce BENCHFLAGS="-benchtime=5s -count=3"
BENCH ?= .
BENCHFLAGS ?=
# make run ARGS="--config sluice.yaml"
ARGS ?=
KAFKA_DIR := deploy/kafka
KAFKA_RUN ?= $(KAFKA_DIR)/.run

.PHONY: help all run build test test-unit test-integration kafka-up kafka-down bench fmt vet clean

all: build

help:
	@echo "make run               go run ./cmd/sluice serve \$$(ARGS)"
	@echo "make build             build bin/sluice"
	@echo "make test              full suite, same as CI (deploy/test.sh; SLUICE_SKIP_REAL_KAFKA=1 skips real Kafka)"
	@echo "make test-unit         go test $(GOTESTFLAGS) ./... (embedded broker only)"
	@echo "make kafka-up          start a real Apache Kafka broker in $(KAFKA_RUN)"
	@echo "make test-integration  TestIntegration* against the broker from kafka-up"
	@echo "make kafka-down        stop it and delete $(KAFKA_RUN)"
	@echo "make bench             go test -bench \$$(BENCH) ./..."

run:
	$(GO) run ./cmd/sluice serve $(ARGS)

build:
	$(GO) build -o bin/sluice ./cmd/sluice

test:
	@bash deploy/test.sh

test-unit:
	env -u SLUICE_TEST_BROKERS $(GO) test $(GOTESTFLAGS) ./...

test-integration:
	@test -s $(KAFKA_RUN)/bootstrap || { echo "no broker: run make kafka-up first" >&2; exit 1; }
	SLUICE_TEST_BROKERS=$$(cat $(KAFKA_RUN)/bootstrap) $(GO) test $(GOTESTFLAGS) -run '^TestIntegration' ./...

kafka-up:
	@$(KAFKA_DIR)/start.sh --dir $(KAFKA_RUN) >/dev/null
	@echo "export SLUICE_TEST_BROKERS=$$(cat $(KAFKA_RUN)/bootstrap)"

kafka-down:
	@$(KAFKA_DIR)/stop.sh --dir $(KAFKA_RUN)

bench:
	env -u SLUICE_TEST_BROKERS $(GO) test -run '^$$' -bench '$(BENCH)' -benchmem $(BENCHFLAGS) ./...

fmt:
	gofmt -l -w $$(git ls-files -co --exclude-standard -- '*.go' | grep -v /testdata/)

vet:
	$(GO) vet ./...

clean:
	rm -rf bin $(KAFKA_DIR)/target
