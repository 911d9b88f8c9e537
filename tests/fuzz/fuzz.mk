# libFuzzer targets for lib/, included by the top Makefile.
#   make fuzz [FUZZ_SECONDS=20] [FUZZ_BUILD=build-fuzz]
# builds every target with clang (libFuzzer + ASan + UBSan) and runs each for
# FUZZ_SECONDS from its seed corpus in tests/fuzz/corpus/<name>/. New inputs go
# to $(FUZZ_BUILD)/corpus/<name>/, crash files to $(FUZZ_BUILD)/; the seeds in
# the repository are only read. Each target compiles just the lib/ sources it
# needs, never Redis, FastCGI or the API handlers.

FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 20
FUZZ_CC      ?= clang
FUZZ_NAMES    = json cursor token query decimal frame html wskey event wsmsg wsscan
FUZZ_BINS     = $(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZ_NAMES))
FUZZ_SAN      = -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN) \
                -Wall -Wextra -Werror -Wshadow -Ilib -Ipushd \
                -ffunction-sections -fdata-sections
# http.c also holds the request loop, which calls into json.c and auth.c;
# sortie_query_get does not, so the linker drops those functions and
# their callees are not needed. lld (LLVM 14, beside clang) is used because GNU
# ld keeps every function that the sanitizer coverage tables point at.
FUZZ_LDFLAGS  = -fuse-ld=lld -Wl,--gc-sections

FUZZ_SRC_json    = lib/json.c lib/valid.c lib/buf.c
FUZZ_LIBS_json   = -ljson-c
FUZZ_SRC_cursor  = lib/valid.c lib/buf.c
FUZZ_LIBS_cursor =
FUZZ_SRC_token   = lib/auth.c lib/valid.c lib/buf.c
FUZZ_LIBS_token  = -ljwt -lcrypto
FUZZ_SRC_query   = lib/http.c lib/log.c lib/valid.c lib/buf.c
FUZZ_LIBS_query  =
FUZZ_SRC_decimal = lib/decimal.c
FUZZ_LIBS_decimal =
FUZZ_SRC_frame   = pushd/frame.c lib/buf.c
FUZZ_LIBS_frame  = -lcrypto
FUZZ_SRC_html    = lib/json.c lib/valid.c lib/buf.c
FUZZ_LIBS_html   = -ljson-c
FUZZ_SRC_wskey   = pushd/frame.c lib/buf.c
FUZZ_LIBS_wskey  = -lcrypto
FUZZ_SRC_event   = pushd/event.c pushd/frame.c lib/json.c lib/valid.c lib/buf.c
FUZZ_LIBS_event  = -ljson-c -lcrypto
FUZZ_SRC_wsmsg   = pushd/event.c pushd/frame.c lib/auth.c lib/json.c lib/valid.c lib/buf.c
FUZZ_LIBS_wsmsg  = -ljson-c -ljwt -lcrypto
FUZZ_SRC_wsscan  = pushd/wsscan.c
FUZZ_LIBS_wsscan =

.PHONY: fuzz fuzz-build
fuzz: fuzz-build
	@for t in $(FUZZ_NAMES); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t || exit 1; \
	  echo "== fuzz_$$t ($(FUZZ_SECONDS)s)"; \
	  $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_BUILD)/fuzz_$$t- \
	    $(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t >$(FUZZ_BUILD)/fuzz_$$t.log 2>&1; \
	  rc=$$?; grep -E '^stat::number_of_executed_units|^Done' $(FUZZ_BUILD)/fuzz_$$t.log; \
	  if [ $$rc -ne 0 ]; then tail -n 40 $(FUZZ_BUILD)/fuzz_$$t.log; \
	    echo "fuzz_$$t failed (exit $$rc); log: $(FUZZ_BUILD)/fuzz_$$t.log"; exit 1; fi; \
	done; echo "fuzz: all targets ran $(FUZZ_SECONDS)s without a crash"

fuzz-build: $(FUZZ_BINS)

define FUZZ_RULE
$(FUZZ_BUILD)/fuzz_$(1): tests/fuzz/fuzz_$(1).c $$(FUZZ_SRC_$(1)) $$(wildcard lib/*.h pushd/*.h)
	@mkdir -p $$(dir $$@)
	$$(FUZZ_CC) $$(FUZZ_CFLAGS) -o $$@ tests/fuzz/fuzz_$(1).c $$(FUZZ_SRC_$(1)) \
	  $$(FUZZ_LDFLAGS) $$(FUZZ_LIBS_$(1))
endef
$(foreach t,$(FUZZ_NAMES),$(eval $(call FUZZ_RULE,$(t))))
