/* syncfs_shim: an LD_PRELOAD recorder of every write, truncate, sync and namespace change
 * made to the files of one directory, for the simulated power-loss tests.
 *
 * Why a shim and not FUSE: the recorder must see SQLite's pwrite/fdatasync exactly as the
 * daemon makes them, needs no kernel module or /dev/fuse in CI's sandbox, and keeps every
 * cut point for an offline replay (tests/durability/syncfs.py rebuilds the disk as it would
 * be after a power cut at any sync boundary from one recorded run).
 *
 * SYNCFS_DIR: the directory watched (absolute, no trailing slash); SYNCFS_LOG: the log file.
 * Each record: struct rec, then path1, path2, then data (writes only). Records of all the
 * processes sharing one log are ordered by an flock held across the operation and its record,
 * so the log's order is the order the operations took effect.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { OP_OPEN = 1, OP_WRITE = 2, OP_TRUNCATE = 3, OP_FSYNC = 4, OP_RENAME = 6, OP_UNLINK = 7 };

struct rec {
	uint32_t size;
	uint8_t op;
	uint8_t pad[3];
	uint32_t pid;
	uint32_t flags;
	uint64_t t_ns;
	uint64_t off;
	uint64_t len;
	uint16_t p1len;
	uint16_t p2len;
	uint32_t pad2;
};

#define MAX_FD 4096

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char *g_paths[MAX_FD];
static int g_append[MAX_FD];
static char g_dir[PATH_MAX];
static size_t g_dirlen;
static int g_log = -1;
static int g_ready;

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_close)(int);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_renameat2)(int, const char *, int, const char *, unsigned int);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);

static void init(void)
{
	if (g_ready)
		return;
	real_open = dlsym(RTLD_NEXT, "open");
	real_open64 = dlsym(RTLD_NEXT, "open64");
	real_openat = dlsym(RTLD_NEXT, "openat");
	real_openat64 = dlsym(RTLD_NEXT, "openat64");
	real_write = dlsym(RTLD_NEXT, "write");
	real_pwrite = dlsym(RTLD_NEXT, "pwrite");
	real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
	real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
	real_ftruncate64 = dlsym(RTLD_NEXT, "ftruncate64");
	real_fsync = dlsym(RTLD_NEXT, "fsync");
	real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
	real_close = dlsym(RTLD_NEXT, "close");
	real_rename = dlsym(RTLD_NEXT, "rename");
	real_renameat = dlsym(RTLD_NEXT, "renameat");
	real_renameat2 = dlsym(RTLD_NEXT, "renameat2");
	real_unlink = dlsym(RTLD_NEXT, "unlink");
	real_unlinkat = dlsym(RTLD_NEXT, "unlinkat");
	const char *dir = getenv("SYNCFS_DIR");
	const char *log = getenv("SYNCFS_LOG");
	if (dir && log && strlen(dir) < sizeof(g_dir)) {
		strcpy(g_dir, dir);
		g_dirlen = strlen(g_dir);
		g_log = real_open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	}
	g_ready = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The absolute form of path (relative to dirfd or the cwd); 0 when it cannot be formed. */
static int absolute(int dirfd, const char *path, char *out, size_t size)
{
	if (path[0] == '/')
		return snprintf(out, size, "%s", path) < (int)size;
	char base[PATH_MAX];
	if (dirfd == AT_FDCWD) {
		if (!getcwd(base, sizeof(base)))
			return 0;
	} else if (dirfd >= 0 && dirfd < MAX_FD && g_paths[dirfd]) {
		snprintf(base, sizeof(base), "%s", g_paths[dirfd]);
	} else {
		return 0;
	}
	return snprintf(out, size, "%s/%s", base, path) < (int)size;
}

static int watched(const char *abs)
{
	if (g_log < 0 || strncmp(abs, g_dir, g_dirlen) != 0)
		return 0;
	return abs[g_dirlen] == '/' || abs[g_dirlen] == '\0';
}

static void lock(void)
{
	pthread_mutex_lock(&g_mu);
	flock(g_log, LOCK_EX);
}

static void unlock(void)
{
	flock(g_log, LOCK_UN);
	pthread_mutex_unlock(&g_mu);
}

static void emit(uint8_t op, uint32_t flags, const char *p1, const char *p2, uint64_t off,
		 const void *data, uint64_t len)
{
	struct rec r;
	memset(&r, 0, sizeof(r));
	r.op = op;
	r.pid = (uint32_t)getpid();
	r.flags = flags;
	r.t_ns = now_ns();
	r.off = off;
	r.len = len;
	r.p1len = p1 ? (uint16_t)strlen(p1) : 0;
	r.p2len = p2 ? (uint16_t)strlen(p2) : 0;
	uint64_t body = op == OP_WRITE ? len : 0;
	r.size = (uint32_t)(sizeof(r) + r.p1len + r.p2len + body);
	struct iovec iov[4] = {
		{ &r, sizeof(r) },
		{ (void *)(p1 ? p1 : ""), r.p1len },
		{ (void *)(p2 ? p2 : ""), r.p2len },
		{ (void *)(data ? data : ""), (size_t)body },
	};
	if (writev(g_log, iov, 4) != (ssize_t)r.size)
		abort(); /* a recorder that drops a record would prove nothing */
}

static void remember(int fd, const char *abs, int flags)
{
	if (fd < 0 || fd >= MAX_FD)
		return;
	free(g_paths[fd]);
	g_paths[fd] = strdup(abs);
	g_append[fd] = (flags & O_APPEND) != 0;
}

static int do_open(int dirfd, const char *path, int flags, mode_t mode, int at, int big)
{
	init();
	char abs[PATH_MAX];
	int track = g_log >= 0 && absolute(dirfd, path, abs, sizeof(abs)) && watched(abs);
	if (!track) {
		if (at)
			return big ? real_openat64(dirfd, path, flags, mode)
				   : real_openat(dirfd, path, flags, mode);
		return big ? real_open64(path, flags, mode) : real_open(path, flags, mode);
	}
	lock();
	int fd = at ? (big ? real_openat64(dirfd, path, flags, mode)
			   : real_openat(dirfd, path, flags, mode))
		    : (big ? real_open64(path, flags, mode) : real_open(path, flags, mode));
	int saved = errno;
	if (fd >= 0) {
		remember(fd, abs, flags);
		if (flags & (O_CREAT | O_TRUNC))
			emit(OP_OPEN, (uint32_t)flags, abs, NULL, 0, NULL, 0);
	}
	unlock();
	errno = saved;
	return fd;
}

#define MODE_ARG(flags, mode)                                                                \
	mode_t mode = 0;                                                                     \
	if ((flags) & (O_CREAT | __O_TMPFILE)) {                                             \
		va_list ap;                                                                  \
		va_start(ap, flags);                                                         \
		mode = (mode_t)va_arg(ap, int);                                              \
		va_end(ap);                                                                  \
	}

int open(const char *path, int flags, ...)
{
	MODE_ARG(flags, mode);
	return do_open(AT_FDCWD, path, flags, mode, 0, 0);
}

int open64(const char *path, int flags, ...)
{
	MODE_ARG(flags, mode);
	return do_open(AT_FDCWD, path, flags, mode, 0, 1);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	MODE_ARG(flags, mode);
	return do_open(dirfd, path, flags, mode, 1, 0);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	MODE_ARG(flags, mode);
	return do_open(dirfd, path, flags, mode, 1, 1);
}

static const char *tracked(int fd)
{
	init();
	if (g_log < 0 || fd < 0 || fd >= MAX_FD)
		return NULL;
	return g_paths[fd];
}

static ssize_t do_write(int fd, const void *buf, size_t n, off_t off, int positional, int big)
{
	const char *p = tracked(fd);
	if (!p) {
		if (!positional)
			return real_write(fd, buf, n);
		return big ? real_pwrite64(fd, buf, n, off) : real_pwrite(fd, buf, n, off);
	}
	lock();
	off_t at = off;
	if (!positional) {
		struct stat st;
		if (g_append[fd] && fstat(fd, &st) == 0)
			at = st.st_size;
		else
			at = lseek(fd, 0, SEEK_CUR);
	}
	ssize_t done = !positional ? real_write(fd, buf, n)
				   : (big ? real_pwrite64(fd, buf, n, off) : real_pwrite(fd, buf, n, off));
	int saved = errno;
	if (done > 0)
		emit(OP_WRITE, 0, p, NULL, (uint64_t)at, buf, (uint64_t)done);
	unlock();
	errno = saved;
	return done;
}

ssize_t write(int fd, const void *buf, size_t n) { return do_write(fd, buf, n, 0, 0, 0); }
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) { return do_write(fd, buf, n, off, 1, 0); }
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) { return do_write(fd, buf, n, off, 1, 1); }

static int do_truncate(int fd, off_t len, int big)
{
	const char *p = tracked(fd);
	if (!p)
		return big ? real_ftruncate64(fd, len) : real_ftruncate(fd, len);
	lock();
	int rc = big ? real_ftruncate64(fd, len) : real_ftruncate(fd, len);
	int saved = errno;
	if (rc == 0)
		emit(OP_TRUNCATE, 0, p, NULL, (uint64_t)len, NULL, 0);
	unlock();
	errno = saved;
	return rc;
}

int ftruncate(int fd, off_t len) { return do_truncate(fd, len, 0); }
int ftruncate64(int fd, off_t len) { return do_truncate(fd, len, 1); }

static int do_sync(int fd, int data_only)
{
	const char *p = tracked(fd);
	if (!p)
		return data_only ? real_fdatasync(fd) : real_fsync(fd);
	lock();
	int rc = data_only ? real_fdatasync(fd) : real_fsync(fd);
	int saved = errno;
	if (rc == 0)
		emit(OP_FSYNC, (uint32_t)data_only, p, NULL, 0, NULL, 0);
	unlock();
	errno = saved;
	return rc;
}

int fsync(int fd) { return do_sync(fd, 0); }
int fdatasync(int fd) { return do_sync(fd, 1); }

int close(int fd)
{
	init();
	if (g_log >= 0 && fd >= 0 && fd < MAX_FD && g_paths[fd]) {
		pthread_mutex_lock(&g_mu);
		free(g_paths[fd]);
		g_paths[fd] = NULL;
		pthread_mutex_unlock(&g_mu);
	}
	return real_close(fd);
}

static int do_rename(int olddir, const char *oldp, int newdir, const char *newp, unsigned flags,
		     int kind)
{
	init();
	char a[PATH_MAX], b[PATH_MAX];
	int track = g_log >= 0 && absolute(olddir, oldp, a, sizeof(a)) &&
		    absolute(newdir, newp, b, sizeof(b)) && (watched(a) || watched(b));
	if (track)
		lock();
	int rc = kind == 0   ? real_rename(oldp, newp)
		 : kind == 1 ? real_renameat(olddir, oldp, newdir, newp)
			     : real_renameat2(olddir, oldp, newdir, newp, flags);
	int saved = errno;
	if (track) {
		if (rc == 0)
			emit(OP_RENAME, 0, a, b, 0, NULL, 0);
		unlock();
	}
	errno = saved;
	return rc;
}

int rename(const char *o, const char *n) { return do_rename(AT_FDCWD, o, AT_FDCWD, n, 0, 0); }
int renameat(int od, const char *o, int nd, const char *n) { return do_rename(od, o, nd, n, 0, 1); }
int renameat2(int od, const char *o, int nd, const char *n, unsigned f)
{
	return do_rename(od, o, nd, n, f, 2);
}

static int do_unlink(int dirfd, const char *path, int flags, int at)
{
	init();
	char a[PATH_MAX];
	int track = g_log >= 0 && absolute(dirfd, path, a, sizeof(a)) && watched(a);
	if (track)
		lock();
	int rc = at ? real_unlinkat(dirfd, path, flags) : real_unlink(path);
	int saved = errno;
	if (track) {
		if (rc == 0 && !(flags & AT_REMOVEDIR))
			emit(OP_UNLINK, 0, a, NULL, 0, NULL, 0);
		unlock();
	}
	errno = saved;
	return rc;
}

int unlink(const char *path) { return do_unlink(AT_FDCWD, path, 0, 0); }
int unlinkat(int dirfd, const char *path, int flags) { return do_unlink(dirfd, path, flags, 1); }
