# hqmail: a qmail-compatible MTA suite with hold flags.
# make          build every program into bin/
# make test     the full test suite (unit, vectors, integration)
# make run      the whole system as you, in a private root under ./run
# make install  install into $(ROOT) (default /var/qmail; run as root)

# go from PATH, else where the Go tarball puts it: sudo's secure_path (Debian)
# drops /usr/local/go/bin, and "sudo make install" must still find it.
GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
ROOT    ?= /var/qmail
BIN     := bin
GOFLAGS_BUILD := -trimpath
export CGO_ENABLED := 0

.PHONY: all build test vet fmt-check unit race integration run stop install install-links bench fuzz clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/ ./cmd/...

fmt-check:
	@out=$$(gofmt -l cmd pkg test bench 2>/dev/null); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -count=1 -shuffle=on ./pkg/... ./cmd/...

race:
	CGO_ENABLED=1 $(GO) test -count=1 -race ./pkg/...

integration: build
	$(GO) test -count=1 -timeout 20m ./test/...

test: build fmt-check vet unit race integration

run: build
	@sh scripts/run.sh start

stop:
	@sh scripts/run.sh stop

install: build
	./$(BIN)/qmail-install -root $(ROOT)
	@echo
	@echo "Installed in $(ROOT). To make it the system's sendmail (diverting the"
	@echo "current MTA's files so package upgrades keep off them), run:"
	@echo "    make install-links ROOT=$(ROOT)"

# Link /usr/sbin/sendmail, /usr/lib/sendmail, /usr/bin/mailq and
# /usr/bin/newaliases to the tree, diverting what a Debian package put there.
install-links:
	@for f in /usr/sbin/sendmail /usr/lib/sendmail /usr/bin/mailq /usr/bin/newaliases; do \
	  if [ -e "$$f" ] && [ ! -L "$$f" ] && command -v dpkg-divert >/dev/null; then \
	    dpkg-divert --local --rename --add "$$f"; fi; \
	done
	ln -sf $(ROOT)/bin/sendmail /usr/sbin/sendmail
	ln -sf $(ROOT)/bin/sendmail /usr/lib/sendmail
	ln -sf $(ROOT)/bin/sendmail /usr/bin/mailq
	ln -sf $(ROOT)/bin/newaliases /usr/bin/newaliases

bench: build
	@sh bench/run.sh

fuzz:
	@sh scripts/fuzz.sh

clean:
	rm -rf $(BIN)
