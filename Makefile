# Sortie: build, run, test, install.  `make help` lists the targets.
#
# Overridable: CC, CFLAGS, LDFLAGS, PREFIX, DESTDIR, BUILD (the output folder),
# PORT, PUSH_PORT, REDIS_PORT (for run/start).

CC      ?= cc
CFLAGS  ?= -O2 -g
PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
PORT       ?= 8080
PUSH_PORT  ?= 8081
REDIS_PORT ?= 6390

WARN     = -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral
CPPFLAGS_ALL = -std=c11 -D_GNU_SOURCE -Ilib -I$(BUILD)/gen $(CPPFLAGS)
CFLAGS_ALL   = $(WARN) $(CFLAGS) -MMD -MP
LIBS_CORE    = -lhiredis -ljson-c -ljwt -lcrypto
LIBS_FCGI    = -lfcgi
LIBS_PUSH    = -lmicrohttpd -lwslay -lhiredis
LIBS_TEST    = -lcriterion -lcurl

LUA      = $(sort $(filter-out lib/lua/common.lua,$(wildcard lib/lua/*.lua)))
LIB_SRC  = $(wildcard lib/*.c)
LIB_OBJ  = $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC)) $(BUILD)/gen/sortie_lua.o
LIBA     = $(BUILD)/libsortie.a

# endpoint program name = the SORTIE_R_* rows it serves (see lib/api.h)
ENDPOINTS = fire=SORTIE_R_FIRE \
            fire-count=SORTIE_R_FIRE_COUNT \
            signals=SORTIE_R_SIGNAL_CREATE,SORTIE_R_SIGNAL_GET,SORTIE_R_SIGNAL_LIST \
            stats=SORTIE_R_STATS \
            missions=SORTIE_R_MISSION \
            mission-page=SORTIE_R_PAGE \
            trades=SORTIE_R_TRADE_CLOSE \
            publish=SORTIE_R_PUBLISH \
            events=SORTIE_R_EVENTS \
            health=SORTIE_R_HEALTH \
            admin-stats=SORTIE_R_ADMIN_STATS
EP_NAMES = $(foreach e,$(ENDPOINTS),$(firstword $(subst =, ,$(e))))
EP_BINS  = $(patsubst %,$(BUILD)/cgi-bin/%.fcgi,$(EP_NAMES))
CGI_BINS = $(BUILD)/cgi-bin/sortie-api $(EP_BINS)
TOOLS    = $(BUILD)/bin/sortie-token $(BUILD)/bin/sortie-expire
PUSHD_SRC = $(wildcard pushd/*.c)
PUSHD_OBJ = $(patsubst %.c,$(BUILD)/%.o,$(PUSHD_SRC))
PUSHD    = $(BUILD)/bin/sortie-pushd
PROGRAMS = $(CGI_BINS) $(TOOLS) $(PUSHD)
# man pages: each man/*.in through man/confman (see below)
MAN_IN    = $(wildcard man/*.in)
MAN_PAGES = $(patsubst man/%.in,$(BUILD)/man/%,$(MAN_IN))
CONFMAN   = $(BUILD)/man/confman

UNIT_SRC  = $(wildcard tests/unit/test_*.c)
UNIT_BINS = $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
INT_SRC   = $(wildcard tests/integration/test_*.c)
INT_BINS  = $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(INT_SRC))
FAULT_SRC  = $(wildcard tests/faults/test_*.c)
FAULT_BINS = $(patsubst tests/faults/%.c,$(BUILD)/tests/faults/%,$(FAULT_SRC))
# every libFuzzer target again, with tests/fuzz/replay.c as its main()
REPLAY_SRC  = $(wildcard tests/fuzz/fuzz_*.c)
REPLAY_BINS = $(patsubst tests/fuzz/%.c,$(BUILD)/tests/fuzz/%,$(REPLAY_SRC))
HARNESS_OBJ = $(BUILD)/tests/harness.o $(BUILD)/tests/pushclient.o

.PHONY: all deps run start stop test faults san clean install help tests bench screenshots deb
all: $(PROGRAMS) $(MAN_PAGES)

help:
	@echo "make            build everything into $(BUILD)/"
	@echo "make run        install what is missing, build, start Redis + Apache + pushd, print the URL"
	@echo "make start|stop the same stack in the background / stop it"
	@echo "make test       install what is missing, build, run every test (and replay the fuzz corpora)"
	@echo "make faults     the fault tests: Redis, daemon and Apache killed, paused, restarted (counts)"
	@echo "make san        the whole suite under AddressSanitizer + UndefinedBehaviorSanitizer"
	@echo "make install    install into DESTDIR/PREFIX (default /usr/local), man pages included"
	@echo "make deb        the Debian package (debian/), built from a copy of the source into $(BUILD)/deb/"
	@echo "make clean      remove $(BUILD)/ and build-san/"

deps:
	@sh tools/deps.sh --browser

$(BUILD)/gen/sortie_lua.h $(BUILD)/gen/sortie_lua.c: lib/lua/common.lua $(LUA) tools/lua2c.sh
	@mkdir -p $(BUILD)/gen
	sh tools/lua2c.sh $(BUILD)/gen/sortie_lua.h $(BUILD)/gen/sortie_lua.c lib/lua/common.lua $(LUA)

$(BUILD)/gen/sortie_lua.o: $(BUILD)/gen/sortie_lua.c
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/lib/%.o: lib/%.c $(BUILD)/gen/sortie_lua.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -c -o $@ $<

$(LIBA): $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/cgi-bin/sortie-api: cgi-bin/sortie-api.c $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -o $@ $< $(LIBA) $(LIBS_FCGI) $(LIBS_CORE) $(LDFLAGS)

define endpoint_rule
$(BUILD)/cgi-bin/$(1).fcgi: cgi-bin/endpoint.c $(LIBA)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CPPFLAGS_ALL) $$(CFLAGS_ALL) -MF $$@.d -DSORTIE_NAME='"$(1)"' -DSORTIE_ROUTES='$(2)' -o $$@ $$< $$(LIBA) $$(LIBS_FCGI) $$(LIBS_CORE) $$(LDFLAGS)
endef
$(foreach e,$(ENDPOINTS),$(eval $(call endpoint_rule,$(firstword $(subst =, ,$(e))),$(lastword $(subst =, ,$(e))))))

$(BUILD)/bin/%: tools/%.c $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -o $@ $< $(LIBA) $(LIBS_CORE) $(LDFLAGS)

$(BUILD)/pushd/%.o: pushd/%.c $(BUILD)/gen/sortie_lua.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -c -o $@ $<

$(PUSHD): $(PUSHD_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $(PUSHD_OBJ) $(LIBA) $(LIBS_PUSH) $(LIBS_CORE) $(LDFLAGS)

# ---- man pages ----
# man/confman (built here, never installed) copies a page's source, putting in
# the version and, for sortie.conf(5), one entry per key of lib/cfg.c's table
# (name, description, default, range), so the page cannot drift from the code.
# View one with `man -l $(BUILD)/man/sortie.conf.5`.
$(CONFMAN): man/confman.c $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -o $@ $< $(LIBA) $(LIBS_CORE) $(LDFLAGS)

$(BUILD)/man/%: man/%.in $(CONFMAN)
	$(CONFMAN) $< >$@.tmp && mv $@.tmp $@

# ---- benchmarks ----
BENCH_BINS = $(BUILD)/bench/fanout $(BUILD)/bench/firelat $(BUILD)/bench/publish $(BUILD)/bench/hello \
             $(BUILD)/bench/bare
$(BUILD)/bench/fanout $(BUILD)/bench/firelat: $(BUILD)/bench/%: bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LDFLAGS)
# the limit row of the side-by-side fan-out (bench/side.sh)
$(BUILD)/bench/bare: bench/bare.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< -lcrypto $(LDFLAGS)
$(BUILD)/bench/publish: bench/publish.c $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -o $@ $< $(LIBA) $(LIBS_CORE) $(LDFLAGS)
$(BUILD)/bench/hello: bench/hello.c $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -o $@ $< $(LIBA) $(LIBS_FCGI) $(LIBS_CORE) $(LDFLAGS)

# (deps first: on a fresh machine the build itself needs the -dev packages)
bench: deps
	@sh tools/deps.sh --bench
	@$(MAKE) --no-print-directory all $(BENCH_BINS)
	@BUILD=$(BUILD) sh bench/run.sh

# ---- tests ----
$(BUILD)/tests/%.o: tests/%.c $(BUILD)/gen/sortie_lua.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) -Itests -Ipushd $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(LIBA)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIBA) $(LIBS_CORE) $(LIBS_TEST) $(LDFLAGS)

# channels and resume, on the daemon's own objects above its Redis side,
# which a scripted fake replaces (tests/unit/fake_bus.c)
PUSHD_CORE_OBJ = $(patsubst %,$(BUILD)/pushd/%.o,channel resume clients conn limit event frame metrics)
$(BUILD)/tests/unit/test_resume: $(BUILD)/tests/unit/test_resume.o $(BUILD)/tests/unit/fake_bus.o \
                                 $(PUSHD_CORE_OBJ) $(LIBA)
	$(CC) $(CFLAGS_ALL) -o $@ $(filter %.o,$^) $(LIBA) $(LIBS_CORE) $(LIBS_TEST) $(LDFLAGS)

# long-poll clients on the same core, with their transport and reply code
$(BUILD)/tests/unit/test_poll: $(BUILD)/tests/unit/test_poll.o $(BUILD)/tests/unit/fake_bus.o \
                               $(PUSHD_CORE_OBJ) $(BUILD)/pushd/poll.o $(BUILD)/pushd/reply.o $(LIBA)
	$(CC) $(CFLAGS_ALL) -o $@ $(filter %.o,$^) $(LIBA) $(LIBS_CORE) -lmicrohttpd $(LIBS_TEST) $(LDFLAGS)

$(BUILD)/tests/integration/%: $(BUILD)/tests/integration/%.o $(HARNESS_OBJ) $(LIBA)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(HARNESS_OBJ) $(LIBA) $(LIBS_CORE) $(LIBS_TEST) $(LDFLAGS)

$(BUILD)/tests/faults/%: $(BUILD)/tests/faults/%.o $(HARNESS_OBJ) $(LIBA)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(HARNESS_OBJ) $(LIBA) $(LIBS_CORE) $(LIBS_TEST) -lpthread $(LDFLAGS)

# the fuzz targets over their corpora (tests/run.sh runs each as one test);
# lib/ comes from the archive, the daemon's framing, envelopes and frame
# follower from its objects
REPLAY_PUSHD_OBJ = $(BUILD)/pushd/event.o $(BUILD)/pushd/frame.o $(BUILD)/pushd/wsscan.o
$(BUILD)/tests/fuzz/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/replay.o \
                            $(REPLAY_PUSHD_OBJ) $(LIBA)
	$(CC) $(CFLAGS_ALL) -o $@ $(filter %.o,$^) $(LIBA) $(LIBS_CORE) $(LDFLAGS)

tests: $(PROGRAMS) $(MAN_PAGES) $(UNIT_BINS) $(INT_BINS) $(REPLAY_BINS)

# (--deb: test_deb builds, installs and purges the package)
test: deps
	@sh tools/deps.sh --deb
	@$(MAKE) --no-print-directory tests
	@BUILD=$(BUILD) sh tests/run.sh

# slower tests that inject faults and count what was lost or repeated
# (tests/faults); .ci/run runs them after `make test`
faults: deps
	@$(MAKE) --no-print-directory $(PROGRAMS) $(FAULT_BINS)
	@BUILD=$(BUILD) SORTIE_SUITE=faults sh tests/run.sh

san:
	@sh tools/deps.sh --browser
	@$(MAKE) --no-print-directory tests BUILD=build-san CC=clang \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	  LDFLAGS="-fsanitize=address,undefined"
	@BUILD=build-san SORTIE_SAN=1 sh tests/run.sh

# the README's screenshots, from a live page in Chromium
screenshots: all
	@SORTIE_SCREENSHOTS_DIR=docs/img BUILD=$(BUILD) sh tests/browser/run.sh screenshots

# ---- the stack ----
run: deps all
	@BUILD=$(BUILD) PORT=$(PORT) PUSH_PORT=$(PUSH_PORT) REDIS_PORT=$(REDIS_PORT) sh tools/stack.sh run

start: deps all
	@BUILD=$(BUILD) PORT=$(PORT) PUSH_PORT=$(PUSH_PORT) REDIS_PORT=$(REDIS_PORT) sh tools/stack.sh start

stop:
	@BUILD=$(BUILD) sh tools/stack.sh stop

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/sortie/cgi-bin \
	  $(DESTDIR)$(PREFIX)/share/sortie/www $(DESTDIR)$(PREFIX)/share/sortie/conf
	install -m 755 $(TOOLS) $(PUSHD) $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(BUILD)/cgi-bin/sortie-api $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(EP_BINS) $(DESTDIR)$(PREFIX)/lib/sortie/cgi-bin/
	cp -R www/. $(DESTDIR)$(PREFIX)/share/sortie/www/
	cp -R conf/. $(DESTDIR)$(PREFIX)/share/sortie/conf/
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 \
	  $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 644 $(filter %.1,$(MAN_PAGES)) $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 $(filter %.5,$(MAN_PAGES)) $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 $(filter %.8,$(MAN_PAGES)) $(DESTDIR)$(PREFIX)/share/man/man8/

# the Debian package (debian/, debhelper), from a copy of the source in a
# temporary folder: nothing of the checkout is built or changed; the .deb goes
# to $(BUILD)/deb/ and its path is printed last (tools/deb.sh)
deb:
	@sh tools/deps.sh --deb
	@BUILD=$(BUILD) sh tools/deb.sh

clean:
	rm -rf $(BUILD) build-san

# fuzz targets (libFuzzer): `make fuzz`
-include tests/fuzz/fuzz.mk

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
