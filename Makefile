# Build and install wsrt for C and C++ users.
#
#   make                      # cargo build --release
#   make install PREFIX=/usr/local [DESTDIR=...]
#
# Installs libwsrt.so.$(VERSION) (soname libwsrt.so.$(SOVERSION)) with its
# symlinks, libwsrt.a (both stripped of debug info), wsrt.h, wsrt.hpp and a
# pkg-config file whose Libs carry an rpath, so that a program built with
# `cc app.c $(pkg-config --cflags --libs wsrt)` finds the library at run
# time without LD_LIBRARY_PATH or ldconfig.

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
CARGO ?= cargo
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
# 0.x releases may break the ABI at each minor version: the soname says so.
SOVERSION := $(shell echo $(VERSION) | cut -d. -f1-2)
# Its own target directory: the installed library carries a soname that
# target/release/libwsrt.so (what the README's in-tree build links) must not.
TARGET_DIR := target/install
TARGET := $(TARGET_DIR)/release

.PHONY: all install uninstall
all:
	WSRT_SONAME=1 $(CARGO) build --release --lib --target-dir $(TARGET_DIR)

install: all
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)
	install -m 755 $(TARGET)/libwsrt.so $(DESTDIR)$(LIBDIR)/libwsrt.so.$(VERSION)
	strip --strip-unneeded $(DESTDIR)$(LIBDIR)/libwsrt.so.$(VERSION)
	ln -sf libwsrt.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libwsrt.so.$(SOVERSION)
	ln -sf libwsrt.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libwsrt.so
	install -m 644 $(TARGET)/libwsrt.a $(DESTDIR)$(LIBDIR)/libwsrt.a
	strip --strip-debug $(DESTDIR)$(LIBDIR)/libwsrt.a
	install -m 644 include/wsrt.h include/wsrt.hpp $(DESTDIR)$(INCLUDEDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    wsrt.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/wsrt.pc

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libwsrt.so* $(DESTDIR)$(LIBDIR)/libwsrt.a \
	      $(DESTDIR)$(INCLUDEDIR)/wsrt.h $(DESTDIR)$(INCLUDEDIR)/wsrt.hpp \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/wsrt.pc
