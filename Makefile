# Makefile — builds the feox engine (build/libfeox.a, build/libfeox.so), the SQLite extension
# (build/feox.so) and every test, fuzz and benchmark program. Sources are found by wildcard, so a
# new file only needs to follow the naming below:
#
#   engine/*.c, engine/<layer>/**.c  the engine library (engine/README.md: the layers)
#   ext/*.c                         the SQLite extension (loadable, and static with -DSQLITE_CORE)
#   tests/unit/test_*.c             cmocka unit tests, linked with the engine
#   tests/unit/test_ext_*.c         cmocka tests that also link the extension statically + SQLite
#   tests/stress/stress_*.c         concurrency stress programs (also run under TSan: make tsan)
#   tests/stress/stress_ext_*.c     stress through SQL (extension linked statically)
#   tests/crash/crash_*.c           kill -9 / fault-injection programs (CRASH_ITERATIONS=N)
#   tests/fuzz/fuzz_*.c             libFuzzer targets (corpus in tests/fuzz/corpus/<name>/)
#   tests/bench/*.c                 one benchmark binary, build/bench/feox_bench
#   tests/sql/*.sql (+ .expected)   golden SQL through the sqlite3 shell (tests/sql/run.sh)
#   tests/python/test_*.py          /usr/bin/python3 unittest files
#   tests/docs/run.sh               the README's C, Python and Node examples, compiled and run
#   tests/clients/                  feox through Tcl, Ruby and PHP's SQLite bindings (run.sh;
#                                   make client-tests)
#   tests/packages/*                the Python wheel and npm package (bindings/python, bindings/node)
#                                   installed and used by small apps; make package-tests
#   tests/layers/                   make layers: the layer table (check_layers.py) and its self-test
#   tests/sqlite_latest/            make test-sqlite-latest: Python and SQL tests on a newer SQLite
#   tests/cluster/                  make cluster: a dqlite node host (feox_dqlite_node.c), a 3-node
#                                   failover test and a Litestream backup/restore round trip
#
# Targets: all test layers demo tsan fuzz crash bench soak lint install uninstall deps clean format
#          cluster test-sqlite-latest

# B: the build directory (give each concurrent build its own: make B=build-x ...)
B ?= build
PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
CLANG ?= clang
PYTHON ?= /usr/bin/python3
SQLITE3 ?= sqlite3
FUZZ_SECONDS ?= 30
CRASH_ITERATIONS ?= 200
QUICK ?=

SOVERSION := 0
VERSION := 0.1.0

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -fPIC $(WARN) -Iengine $(shell pkg-config --cflags libcjson 2>/dev/null)
CFLAGS ?= -O2 -g
ALL_CFLAGS = $(BASE_CFLAGS) $(CFLAGS)
ENGINE_LIBS := -lck -lcjson -lxxhash -lpthread -lm
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
TSAN_FLAGS := -O1 -g -fsanitize=thread

ENGINE_SRC := $(sort $(wildcard engine/*.c engine/*/*.c engine/*/*/*.c))
EXT_SRC := $(sort $(wildcard ext/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
STRESS_SRC := $(sort $(wildcard tests/stress/stress_*.c))
CRASH_SRC := $(sort $(wildcard tests/crash/crash_*.c))
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
BENCH_SRC := $(sort $(wildcard tests/bench/*.c))
TEST_SUPPORT_SRC := $(sort $(wildcard tests/support/*.c))

# One object tree per flavour: $(B)/<flavour>/{engine,ext,...}/x.o
define objs
$(patsubst %.c,$(B)/$(1)/%.o,$(2))
endef

ENGINE_OBJ := $(call objs,rel,$(ENGINE_SRC))
EXT_OBJ := $(call objs,rel,$(EXT_SRC))
EXT_CORE_OBJ := $(call objs,relcore,$(EXT_SRC))
ASAN_ENGINE_OBJ := $(call objs,asan,$(ENGINE_SRC))
ASAN_EXT_CORE_OBJ := $(call objs,asancore,$(EXT_SRC))
TSAN_ENGINE_OBJ := $(call objs,tsan,$(ENGINE_SRC))
TSAN_EXT_CORE_OBJ := $(call objs,tsancore,$(EXT_SRC))

UNIT_BIN := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
STRESS_BIN := $(patsubst tests/stress/%.c,$(B)/tests/%,$(STRESS_SRC))
CRASH_BIN := $(patsubst tests/crash/%.c,$(B)/tests/%,$(CRASH_SRC))
ASAN_UNIT_BIN := $(patsubst tests/unit/%.c,$(B)/asan-tests/%,$(UNIT_SRC))
ASAN_STRESS_BIN := $(patsubst tests/stress/%.c,$(B)/asan-tests/%,$(STRESS_SRC))
ASAN_CRASH_BIN := $(patsubst tests/crash/%.c,$(B)/asan-tests/%,$(CRASH_SRC))
TSAN_STRESS_BIN := $(patsubst tests/stress/%.c,$(B)/tsan-tests/%,$(STRESS_SRC))
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(B)/fuzz/%,$(FUZZ_SRC))

BUILD_DEPS := libsqlite3-dev libcjson-dev libck-dev libxxhash-dev pkg-config sqlite3
# the client tests' interpreters and SQLite bindings: tcl, ruby, php (tests/clients)
CLIENT_DEPS := tcl libsqlite3-tcl ruby ruby-sqlite3 php-cli php-sqlite3
TEST_DEPS := libcmocka-dev python3 valgrind clang libclang-rt-14-dev $(CLIENT_DEPS)
BENCH_DEPS := liblmdb-dev librocksdb-dev gnuplot-nox
LINT_DEPS := cppcheck clang-tidy

.PHONY: docs-tests all test layers demo tsan fuzz crash bench soak install uninstall deps deps-test deps-bench deps-lint \
	clean format unit-tests asan-tests sql-tests python-tests client-tests stress-tests crash-tests \
	test-sqlite-latest fuzz-smoke valgrind-tests lint

all: $(B)/libfeox.a $(B)/libfeox.so $(B)/feox.so

# ---- dependencies: install missing Debian packages (as root, or through sudo) -------------------
# Sets the shell variable missing to those of the packages $(1) not installed (one dpkg-query).
define find_missing
missing=""; installed=" $$(dpkg-query -W -f='$${Status} $${Package}\n' $(1) 2>/dev/null | sed -n 's/^install ok installed //p' | tr '\n' ' ')"; for p in $(1); do case "$$installed" in *" $$p "*) ;; *) missing="$$missing $$p" ;; esac; done
endef
define install_missing
	@$(call find_missing,$(1)); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

deps:
	$(call install_missing,$(BUILD_DEPS))
deps-test: deps
	$(call install_missing,$(TEST_DEPS))
deps-bench: deps
	$(call install_missing,$(BENCH_DEPS))
deps-lint:
	$(call install_missing,$(LINT_DEPS))

# A plain `make` on a fresh machine: every object waits for `deps`, which costs two dpkg-query calls
# (no network) when everything is installed and installs what is missing otherwise (as
# root, or through sudo). Without root or sudo it stops before compiling, with one line naming
# `make deps` and the packages. Skipped where there is no dpkg-query (not Debian).
HAVE_DPKG_QUERY := $(shell command -v dpkg-query 2>/dev/null)
.PHONY: build-deps deps-preflight
build-deps: $(if $(HAVE_DPKG_QUERY),deps)
$(ENGINE_OBJ) $(EXT_OBJ) $(EXT_CORE_OBJ) $(ASAN_ENGINE_OBJ) $(ASAN_EXT_CORE_OBJ) $(TSAN_ENGINE_OBJ) \
	$(TSAN_EXT_CORE_OBJ): | build-deps
deps: deps-preflight
deps-preflight:
	@$(call find_missing,$(BUILD_DEPS)); \
	if [ -n "$$missing" ] && [ "$$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then \
	  echo "feox: missing Debian packages:$$missing; run 'make deps' as root to install them" >&2; exit 1; fi

# ---- libraries ----------------------------------------------------------------------------------
$(B)/rel/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@
$(B)/relcore/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DSQLITE_CORE -MMD -MP -c $< -o $@
$(B)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN_FLAGS) -MMD -MP -c $< -o $@
$(B)/asancore/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN_FLAGS) -DSQLITE_CORE -MMD -MP -c $< -o $@
$(B)/tsan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(TSAN_FLAGS) -MMD -MP -c $< -o $@
$(B)/tsancore/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(TSAN_FLAGS) -DSQLITE_CORE -MMD -MP -c $< -o $@

$(B)/libfeox.a: $(ENGINE_OBJ)
	@mkdir -p $(B)
	rm -f $@ && ar rcs $@ $^
$(B)/asan/libfeox.a: $(ASAN_ENGINE_OBJ)
	rm -f $@ && ar rcs $@ $^
$(B)/tsan/libfeox.a: $(TSAN_ENGINE_OBJ)
	rm -f $@ && ar rcs $@ $^

$(B)/libfeox.so: $(ENGINE_OBJ)
	$(CC) -shared -Wl,-soname,libfeox.so.$(SOVERSION) -o $@ $^ $(ENGINE_LIBS)

# The loadable extension: engine linked in, SQLite NOT linked (the host provides it).
$(B)/feox.so: $(EXT_OBJ) $(ENGINE_OBJ) ext/feox.map
	$(CC) -shared -o $@ $(EXT_OBJ) $(ENGINE_OBJ) $(ENGINE_LIBS) -Wl,-z,now -Wl,-z,relro \
	  -Wl,--version-script=ext/feox.map

# ---- tests ----------------------------------------------------------------------------------------
TEST_LIBS := -lcmocka $(ENGINE_LIBS)
is_ext = $(findstring _ext_,$(notdir $(1)))

$(B)/tests/%: tests/unit/%.c $(B)/libfeox.a $(EXT_CORE_OBJ) $(TEST_SUPPORT_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/support -Iext $(if $(call is_ext,$@),-DSQLITE_CORE) $< $(TEST_SUPPORT_SRC) \
	  $(if $(call is_ext,$@),$(EXT_CORE_OBJ) -lsqlite3) $(B)/libfeox.a $(TEST_LIBS) -o $@
$(B)/tests/%: tests/stress/%.c $(B)/libfeox.a $(EXT_CORE_OBJ) $(TEST_SUPPORT_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/support -Iext $(if $(call is_ext,$@),-DSQLITE_CORE) $< $(TEST_SUPPORT_SRC) \
	  $(if $(call is_ext,$@),$(EXT_CORE_OBJ) -lsqlite3) $(B)/libfeox.a $(TEST_LIBS) -o $@
$(B)/tests/%: tests/crash/%.c $(B)/libfeox.a $(TEST_SUPPORT_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/support $< $(TEST_SUPPORT_SRC) $(B)/libfeox.a $(TEST_LIBS) -o $@

$(B)/asan-tests/%: tests/unit/%.c $(B)/asan/libfeox.a $(ASAN_EXT_CORE_OBJ) $(TEST_SUPPORT_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN_FLAGS) -Itests/support -Iext $(if $(call is_ext,$@),-DSQLITE_CORE) $< $(TEST_SUPPORT_SRC) \
	  $(if $(call is_ext,$@),$(ASAN_EXT_CORE_OBJ) -lsqlite3) $(B)/asan/libfeox.a $(TEST_LIBS) -o $@
$(B)/asan-tests/%: tests/stress/%.c $(B)/asan/libfeox.a $(ASAN_EXT_CORE_OBJ) $(TEST_SUPPORT_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN_FLAGS) -Itests/support -Iext $(if $(call is_ext,$@),-DSQLITE_CORE) $< $(TEST_SUPPORT_SRC) \
	  $(if $(call is_ext,$@),$(ASAN_EXT_CORE_OBJ) -lsqlite3) $(B)/asan/libfeox.a $(TEST_LIBS) -o $@
$(B)/asan-tests/%: tests/crash/%.c $(B)/asan/libfeox.a $(TEST_SUPPORT_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN_FLAGS) -Itests/support $< $(TEST_SUPPORT_SRC) $(B)/asan/libfeox.a $(TEST_LIBS) -o $@

$(B)/tsan-tests/%: tests/stress/%.c $(B)/tsan/libfeox.a $(TSAN_EXT_CORE_OBJ) $(TEST_SUPPORT_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(TSAN_FLAGS) -Itests/support -Iext $(if $(call is_ext,$@),-DSQLITE_CORE) $< $(TEST_SUPPORT_SRC) \
	  $(if $(call is_ext,$@),$(TSAN_EXT_CORE_OBJ) -lsqlite3) $(B)/tsan/libfeox.a $(TEST_LIBS) -o $@

# make test: everything, plain and under ASan+UBSan.
test: deps-test all
	@$(MAKE) --no-print-directory layers unit-tests asan-tests sql-tests python-tests client-tests \
	  stress-tests crash-tests valgrind-tests docs-tests fuzz-smoke install-tests
	@echo "all tests passed"

# make layers: engine/ includes follow the layers (engine/README.md; the table is in
# tests/layers/check_layers.py) and no two files of engine/ or ext/ depend on each other, read from
# the symbols of the built objects. The self-test first proves the check fails where it should.
layers: $(ENGINE_OBJ) $(EXT_OBJ)
	@CC="$(CC)" PYTHON="$(PYTHON)" bash tests/layers/selftest.sh
	@$(PYTHON) tests/layers/check_layers.py --build $(B)/rel

unit-tests: $(UNIT_BIN)
	@for t in $(UNIT_BIN); do echo "== $$t"; $$t || exit 1; done

asan-tests: $(ASAN_UNIT_BIN) $(ASAN_STRESS_BIN) $(ASAN_CRASH_BIN)
	@for t in $(ASAN_UNIT_BIN); do echo "== $$t (asan)"; \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $$t || exit 1; done
	@for t in $(ASAN_STRESS_BIN); do echo "== $$t --quick (asan)"; \
	  ASAN_OPTIONS=detect_leaks=1 $$t --quick || exit 1; done
	@for t in $(ASAN_CRASH_BIN); do echo "== $$t (asan)"; \
	  ASAN_OPTIONS=detect_leaks=1 CRASH_ITERATIONS=10 $$t || exit 1; done

stress-tests: $(STRESS_BIN)
	@for t in $(STRESS_BIN); do echo "== $$t"; $$t || exit 1; done

crash-tests: $(CRASH_BIN)
	@for t in $(CRASH_BIN); do echo "== $$t"; CRASH_ITERATIONS=50 $$t || exit 1; done

crash: deps-test $(CRASH_BIN)
	@for t in $(CRASH_BIN); do echo "== $$t"; CRASH_ITERATIONS=$(CRASH_ITERATIONS) $$t || exit 1; done

sql-tests: $(B)/feox.so
	@bash tests/sql/run.sh

python-tests: $(B)/feox.so
	@if ls tests/python/test_*.py >/dev/null 2>&1; then \
	  cd tests/python && FEOX_EXT=$(CURDIR)/$(B)/feox $(PYTHON) -m unittest -q $$(ls test_*.py | sed 's/\.py$$//'); fi

# Tcl, Ruby and PHP scripts through Debian's bindings (each skipped, saying so, if not installed).
client-tests: $(B)/feox.so
	@FEOX_EXT=$(CURDIR)/$(B)/feox bash tests/clients/run.sh

docs-tests: $(B)/libfeox.a $(B)/feox.so
	@BUILD=$(B) bash tests/docs/run.sh

# test-sqlite-latest: the Python suite and the SQL goldens on the newer SQLite that better-sqlite3
# bundles, built twice into $(B)/sqlite-latest (Debian's options, better-sqlite3's). Not part of
# `make test`: the first run needs npm and compiles the amalgamation (tests/sqlite_latest/run.sh).
test-sqlite-latest: $(B)/feox.so
	@B=$(B) bash tests/sqlite_latest/run.sh

valgrind-tests: $(B)/feox.so
	@if [ -f tests/sql/valgrind.sh ]; then bash tests/sql/valgrind.sh; fi

tsan: deps-test $(TSAN_STRESS_BIN)
	@for t in $(TSAN_STRESS_BIN); do echo "== $$t (tsan)"; \
	  TSAN_OPTIONS="halt_on_error=1 detect_deadlocks=0" $$t --quick || exit 1; done

# ---- fuzzing (clang libFuzzer) ------------------------------------------------------------------
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Iengine -Iext \
	-Itests/support $(shell pkg-config --cflags libcjson 2>/dev/null)
$(B)/fuzz/%: tests/fuzz/%.c $(ENGINE_SRC) $(EXT_SRC)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_FLAGS) -DSQLITE_CORE $< $(ENGINE_SRC) $(if $(findstring sql,$*),$(EXT_SRC) -lsqlite3) \
	  $(ENGINE_LIBS) -o $@

define run_fuzzer
	@for f in $(FUZZ_BIN); do n=$$(basename $$f); echo "== $$n ($(1) s)"; \
	  mkdir -p $(B)/fuzz/corpus-$$n tests/fuzz/corpus/$$n; \
	  dict=""; [ -f tests/fuzz/$$n.dict ] && dict="-dict=tests/fuzz/$$n.dict"; \
	  $$f -max_total_time=$(1) -rss_limit_mb=2048 -artifact_prefix=$(B)/fuzz/$$n- $$dict \
	    $(B)/fuzz/corpus-$$n tests/fuzz/corpus/$$n >$(B)/fuzz/$$n.log 2>&1 \
	    || { tail -40 $(B)/fuzz/$$n.log; exit 1; }; done
	@echo "== fuzz_sql on a database file ($(1) s)"; \
	  FUZZ_SQL_DB=$(B)/fuzz/fuzz_sql.db $(B)/fuzz/fuzz_sql -max_total_time=$(1) -rss_limit_mb=2048 \
	    -artifact_prefix=$(B)/fuzz/fuzz_sql_db- $(B)/fuzz/corpus-fuzz_sql \
	    tests/fuzz/corpus/fuzz_sql >$(B)/fuzz/fuzz_sql_db.log 2>&1 \
	    || { tail -40 $(B)/fuzz/fuzz_sql_db.log; exit 1; }
endef

fuzz: deps-test $(FUZZ_BIN)
	$(call run_fuzzer,$(FUZZ_SECONDS))

fuzz-smoke: $(FUZZ_BIN)
	$(call run_fuzzer,10)

# ---- demo, benchmarks, soak ------------------------------------------------------------------------
demo: deps all
	@cd sql && $(SQLITE3) -bail -cmd '.load ../$(B)/feox' :memory: < demo.sql

$(B)/bench/feox_bench: $(BENCH_SRC) $(B)/libfeox.a $(EXT_CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O2 -Iext -DSQLITE_CORE $(BENCH_SRC) $(EXT_CORE_OBJ) $(B)/libfeox.a \
	  -llmdb -lrocksdb -lsqlite3 $(ENGINE_LIBS) -o $@

# The "sqlite" storage backend's own measurements (not part of make bench; see the file's header).
$(B)/bench/bench_storage_sqlite: tests/bench/storage_sqlite/bench_storage_sqlite.c $(B)/libfeox.a $(EXT_CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O2 -Iext -DSQLITE_CORE $< $(EXT_CORE_OBJ) $(B)/libfeox.a -lsqlite3 $(ENGINE_LIBS) -o $@

# Open and close of a store file (issue 15): not part of make bench (see the file's header).
$(B)/bench/bench_reopen: tests/bench/reopen/bench_reopen.c $(B)/libfeox.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O2 $< $(B)/libfeox.a $(ENGINE_LIBS) -o $@

# Opening a database-mode table (issue 13): not part of make bench (see the file's header).
$(B)/bench/bench_db_open: tests/bench/db_open/bench_db_open.c $(B)/libfeox.a $(EXT_CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O2 -Iext -DSQLITE_CORE $< $(EXT_CORE_OBJ) $(B)/libfeox.a -lsqlite3 $(ENGINE_LIBS) -o $@

# make bench [QUICK=1] [SIZE=10K|1M|10M]: the report on stdout (tests/bench/README.md); the ratios
# as data ($(B)/bench/ratios.tsv) and as a chart ($(B)/bench/ratios.svg, tests/bench/ratios.gp).
SIZE ?=
bench: deps-bench $(B)/bench/feox_bench
	$(B)/bench/feox_bench $(if $(QUICK),--quick) $(if $(SIZE),--n $(SIZE)) --ratios $(B)/bench/ratios.tsv
	gnuplot -e "data='$(B)/bench/ratios.tsv'; out='$(B)/bench/ratios.svg'" tests/bench/ratios.gp
	@echo "chart: $(B)/bench/ratios.svg (open it in a web browser)"

# make soak SOAK_SECONDS=N (or SOAK_SECONDS in the environment); 600 s by default.
SOAK_SECONDS ?= 600
soak: deps-test $(STRESS_BIN)
	@if [ -x $(B)/tests/stress_ext_soak ]; then $(B)/tests/stress_ext_soak --seconds $(SOAK_SECONDS); fi

# ---- static analysis: cppcheck, then clang-tidy with the checks in .clang-tidy -------------------
LINT_SRC := $(ENGINE_SRC) $(EXT_SRC)
CLANG_TIDY ?= clang-tidy
CPPCHECK ?= cppcheck
lint: deps-lint
	$(CPPCHECK) --enable=warning,performance,portability --error-exitcode=1 --inline-suppr \
	  --std=c11 -q -Iengine -Iext $(LINT_SRC)
	@fail=0; for f in $(LINT_SRC); do \
	  $(CLANG_TIDY) --quiet $$f -- -std=c11 -D_GNU_SOURCE -DSQLITE_CORE -Iengine -Iext \
	    $(shell pkg-config --cflags libcjson 2>/dev/null) 2>/dev/null || fail=1; done; \
	  if [ $$fail = 1 ]; then echo "lint: clang-tidy findings above"; exit 1; fi

# ---- install ----------------------------------------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=<staging root, for packagers>] installs
#   $(INCLUDEDIR)/feox.h, $(LIBDIR)/libfeox.a, $(LIBDIR)/libfeox.so.$(VERSION) with the symlinks
#   libfeox.so.$(SOVERSION) (its soname) and libfeox.so (for -lfeox), $(PKGCONFIGDIR)/feox.pc
#   (pkg-config --static adds the private dependencies for libfeox.a), and the SQLite extension
#   $(SQLITE_EXT_DIR)/feox.so. make uninstall (same PREFIX/DESTDIR/...) removes exactly those files.
# Where feox.so goes: the sqlite3 shell's `.load feox` calls dlopen("feox"), then dlopen("feox.so").
# glibc searches a bare name in LD_LIBRARY_PATH, the ld.so cache (ldconfig lists only lib*.so
# files, never feox.so) and ld.so's trusted system dirs (Debian x86_64: /lib/x86_64-linux-gnu,
# /usr/lib/x86_64-linux-gnu, /lib, /usr/lib) -- NOT /usr/local/lib. So for the system prefixes
# /usr and /usr/local, SQLITE_EXT_DIR defaults to the multiarch system dir /usr/lib/<triplet> (from
# `$(CC) -print-multiarch`; plain /usr/lib if the compiler reports none), and `.load feox` works
# from any directory after a plain `sudo make install`. Any other PREFIX (/opt/feox, ~/.local)
# keeps everything under it: SQLITE_EXT_DIR = $(LIBDIR), and `.load` then needs the full path or
# LD_LIBRARY_PATH. Override with SQLITE_EXT_DIR=<dir> (give uninstall the same value).
# A real install (DESTDIR empty, run as root) runs ldconfig so libfeox.so.$(SOVERSION) is found.
INCLUDEDIR ?= $(PREFIX)/include
LIBDIR ?= $(PREFIX)/lib
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
MULTIARCH = $(shell $(CC) -print-multiarch 2>/dev/null)
SYSTEM_EXT_DIR = /usr/lib$(if $(MULTIARCH),/$(MULTIARCH))
SQLITE_EXT_DIR ?= $(if $(filter /usr /usr/ /usr/local /usr/local/,$(PREFIX)),$(SYSTEM_EXT_DIR),$(LIBDIR))
# In feox.pc, paths under PREFIX are written relative to ${prefix}.
pc_path = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))
define run_ldconfig
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then echo ldconfig; ldconfig; fi
endef

install: all
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(SQLITE_EXT_DIR)
	install -m 644 engine/feox.h engine/feox_storage.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(B)/libfeox.a $(DESTDIR)$(LIBDIR)/libfeox.a
	install -m 755 $(B)/libfeox.so $(DESTDIR)$(LIBDIR)/libfeox.so.$(VERSION)
	ln -sfn libfeox.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libfeox.so.$(SOVERSION)
	ln -sfn libfeox.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libfeox.so
	install -m 755 $(B)/feox.so $(DESTDIR)$(SQLITE_EXT_DIR)/feox.so
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(call pc_path,$(LIBDIR))|g' \
	  -e 's|@INCLUDEDIR@|$(call pc_path,$(INCLUDEDIR))|g' -e 's|@VERSION@|$(VERSION)|g' \
	  engine/feox.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/feox.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/feox.pc
	$(call run_ldconfig)

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/feox.h $(DESTDIR)$(INCLUDEDIR)/feox_storage.h $(DESTDIR)$(LIBDIR)/libfeox.a \
	  $(DESTDIR)$(LIBDIR)/libfeox.so $(DESTDIR)$(LIBDIR)/libfeox.so.$(SOVERSION) \
	  $(DESTDIR)$(LIBDIR)/libfeox.so.$(VERSION) $(DESTDIR)$(SQLITE_EXT_DIR)/feox.so \
	  $(DESTDIR)$(PKGCONFIGDIR)/feox.pc
	$(call run_ldconfig)

# Stages an install in a temporary DESTDIR, builds and runs a program against it through
# pkg-config (shared and static), .load's the staged feox.so, then checks uninstall.
.PHONY: install-tests
install-tests: all
	@B=$(B) bash tests/install/run.sh

# ---- packages: the extension as a Python wheel and an npm tarball --------------------------------
# make python-package  $(B)/python/dist/feox-$(VERSION)-py3-none-<platform>.whl, feox.so inside,
#                      built offline from a copy of bindings/python with Debian's python3-build
# make node-package    $(B)/node/feox-$(VERSION).tgz (npm pack of a copy of bindings/node + feox.so;
#                      package.json's cpu set to this machine's)
# make package-tests   installs each into a fresh venv / scratch npm project and runs a small app
#                      (tests/packages/; the npm project's better-sqlite3 is kept in $(B)/node-deps)
# docs-tests runs the README's Python and Node install examples against the same packages.
# Debian packages for building the wheel and for the npm test (node-gyp may compile better-sqlite3).
PACKAGE_DEPS := python3-build python3-setuptools python3-venv python3-wheel python3-pip g++ make python3
.PHONY: python-package node-package package-tests python-package-test node-package-test \
	deps-packages deps-node-debian
# One target installs for both packages (after deps), so `make -j` never runs two apt-gets at once.
# Node.js itself may come from elsewhere than Debian (with its own npm): Debian's only if absent.
deps-packages: deps
	$(call install_missing,$(PACKAGE_DEPS))
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then $(MAKE) --no-print-directory \
	  deps-node-debian; fi
deps-node-debian:
	$(call install_missing,nodejs npm)

python-package: deps-packages $(B)/feox.so
	@rm -rf $(B)/python && mkdir -p $(B)/python
	@cp -r bindings/python $(B)/python/src && strip --strip-debug -o $(B)/python/src/feox/feox.so $(B)/feox.so
	@cd $(B)/python/src && $(PYTHON) -m build --no-isolation --wheel --outdir ../dist \
	  >../build.log 2>&1 || { tail -30 ../build.log; exit 1; }
	@ls $(B)/python/dist/*.whl

node-package: deps-packages $(B)/feox.so
	@rm -rf $(B)/node && mkdir -p $(B)/node
	@cp -r bindings/node $(B)/node/pkg && strip --strip-debug -o $(B)/node/pkg/feox.so $(B)/feox.so
	@cd $(B)/node/pkg && npm pkg set "cpu[0]=$$(node -p process.arch)" && \
	  npm pack --silent --pack-destination .. >/dev/null
	@ls $(B)/node/*.tgz

python-package-test: python-package
	@B=$(B) bash tests/packages/python_package.sh
node-package-test: node-package
	@B=$(B) bash tests/packages/node_package.sh
package-tests: python-package-test node-package-test
	@B=$(B) bash tests/packages/first_make.sh
docs-tests: python-package node-package

# ---- cluster: feox replicated by dqlite, and backed up by Litestream ----------------------------
# make cluster  builds $(B)/cluster/feox_dqlite_node (one dqlite node; feox.so registered through
#               sqlite3_auto_extension), installs Litestream's static binary (npm package, under
#               $(B)/litestream, x86-64 only) and runs, each on 127.0.0.1 and bounded in time:
#               test_dqlite_failover.py (3 nodes, kill -9 of the leader, leadership changes) and
#               test_litestream.py (replicate while writing, restore, every committed row back).
CLUSTER_DEPS := libdqlite-dev pkg-config python3
LITESTREAM_NPM := @flydotio/litestream-linux-x64@1.0.1
LITESTREAM := $(B)/litestream/node_modules/@flydotio/litestream-linux-x64/litestream
.PHONY: cluster deps-cluster
deps-cluster: deps
	$(call install_missing,$(CLUSTER_DEPS))
	@if ! command -v npm >/dev/null; then $(MAKE) --no-print-directory deps-node-debian; fi
$(B)/cluster/feox_dqlite_node: tests/cluster/feox_dqlite_node.c | deps-cluster
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ $$(pkg-config --cflags --libs dqlite) -lsqlite3 -ldl -lpthread
$(LITESTREAM): | deps-cluster
	@mkdir -p $(B)/litestream
	@cd $(B)/litestream && npm install --no-save --no-package-lock --no-audit --no-fund \
	  --loglevel=error $(LITESTREAM_NPM) >/dev/null
	@$@ version
cluster: deps-cluster $(B)/feox.so $(B)/cluster/feox_dqlite_node $(LITESTREAM)
	$(PYTHON) tests/cluster/test_dqlite_failover.py $(B)/cluster/feox_dqlite_node $(B)/feox.so
	$(PYTHON) tests/cluster/test_litestream.py $(LITESTREAM) $(B)/feox.so

format:
	clang-format -i engine/*.[ch] engine/*/*.[ch] engine/*/*/*.[ch] ext/*.[ch] tests/*/*.[ch]

clean:
	rm -rf $(B)

.SECONDARY:

-include $(shell find $(B) -name '*.d' 2>/dev/null)
