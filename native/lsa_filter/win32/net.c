/* Winsock client for the TCP loopback transport: every call is bounded by a deadline
 * (GetTickCount64 ms), so neither LSASS's thread nor the worker can hang on the daemon.
 * Protocol version 2: after the PSK handshake every frame is sealed (core/seal.c), so a
 * capture of the loopback shows no password. */
#include "internal.h"

#include <ws2tcpip.h>
#include <mstcpip.h>

int adsy_net_init(void)
{
    WSADATA w;
    return WSAStartup(MAKEWORD(2, 2), &w) == 0 ? ADSY_NET_OK : ADSY_NET_SOCKET;
}

static long remaining(ULONGLONG deadline)
{
    ULONGLONG now = adsy_now_ms();
    return now >= deadline ? 0 : (long)(deadline - now);
}

static int wait_socket(SOCKET s, int for_write, ULONGLONG deadline)
{
    for (;;) {
        long ms = remaining(deadline);
        if (ms <= 0)
            return ADSY_NET_TIMEOUT;
        fd_set rs, ws, es;
        FD_ZERO(&rs);
        FD_ZERO(&ws);
        FD_ZERO(&es);
        FD_SET(s, for_write ? &ws : &rs);
        FD_SET(s, &es);
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        int n = select(0, &rs, &ws, &es, &tv);
        if (n == SOCKET_ERROR)
            return ADSY_NET_SOCKET;
        if (n > 0)
            return FD_ISSET(s, &es) ? ADSY_NET_CLOSED : ADSY_NET_OK;
    }
}

static int send_raw(adsy_conn *c, const uint8_t *buf, size_t len, ULONGLONG deadline)
{
    size_t off = 0;
    while (off < len) {
        int chunk = len - off > 65536 ? 65536 : (int)(len - off);
        int n = send(c->s, (const char *)buf + off, chunk, 0);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n == SOCKET_ERROR && WSAGetLastError() == WSAEWOULDBLOCK) {
            int rc = wait_socket(c->s, 1, deadline);
            if (rc != ADSY_NET_OK)
                return rc;
            continue;
        }
        return ADSY_NET_CLOSED;
    }
    return ADSY_NET_OK;
}

/* Seals the frames of buf[0..len) one by one into c->tx and sends them, a buffer at a time. */
static int send_sealed(adsy_conn *c, const uint8_t *buf, size_t len, ULONGLONG deadline)
{
    size_t off = 0, staged = 0;
    int rc = ADSY_NET_OK;
    while (off < len && rc == ADSY_NET_OK) {
        uint32_t n;
        if (len - off < 4 || adsy_frame_length(buf + off, ADSY_FRAME_MAX, &n) != ADSY_OK ||
            len - off - 4 < n)
            return ADSY_NET_PROTOCOL; /* not whole frames: a bug of ours, never sent */
        if (ADSY_CONN_TX - staged < 4 + (size_t)n + ADSY_SEAL_TAG_LEN) {
            if (staged == 0)
                return ADSY_NET_PROTOCOL; /* cannot happen: c->tx holds the largest frame */
            rc = send_raw(c, c->tx, staged, deadline);
            staged = 0;
            continue;
        }
        long m = adsy_seal_frame(&c->out, buf + off, 4 + (size_t)n, c->tx + staged,
                                 ADSY_CONN_TX - staged);
        if (m < 0)
            return ADSY_NET_SEAL;
        staged += (size_t)m;
        off += 4 + (size_t)n;
    }
    if (rc == ADSY_NET_OK && staged)
        rc = send_raw(c, c->tx, staged, deadline);
    return rc;
}

int adsy_conn_send(adsy_conn *c, const uint8_t *buf, size_t len, ULONGLONG deadline)
{
    return c->sealed ? send_sealed(c, buf, len, deadline) : send_raw(c, buf, len, deadline);
}

static int recv_exact(adsy_conn *c, uint8_t *buf, size_t len, ULONGLONG deadline)
{
    size_t off = 0;
    while (off < len) {
        int n = recv(c->s, (char *)buf + off, (int)(len - off), 0);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n == 0)
            return ADSY_NET_CLOSED;
        if (WSAGetLastError() != WSAEWOULDBLOCK)
            return ADSY_NET_CLOSED;
        int rc = wait_socket(c->s, 0, deadline);
        if (rc != ADSY_NET_OK)
            return rc;
    }
    return ADSY_NET_OK;
}

int adsy_conn_recv(adsy_conn *c, adsy_reply *r, ULONGLONG deadline)
{
    uint8_t prefix[4];
    uint32_t len;
    int rc = recv_exact(c, prefix, 4, deadline);
    if (rc != ADSY_NET_OK)
        return rc;
    if ((c->sealed ? adsy_sealed_length(prefix, &len)
                   : adsy_frame_length(prefix, ADSY_FRAME_MAX, &len)) != ADSY_OK)
        return ADSY_NET_PROTOCOL;
    rc = recv_exact(c, c->rx, len, deadline);
    if (rc != ADSY_NET_OK)
        return rc;
    if (!c->sealed)
        return adsy_decode_reply(c->rx, len, r) == ADSY_OK ? ADSY_NET_OK : ADSY_NET_PROTOCOL;
    long n = adsy_open_frame(&c->in, c->rx, len, c->pt, ADSY_FRAME_MAX);
    if (n < 0)
        return ADSY_NET_SEAL; /* changed, replayed or reordered: the caller drops us */
    rc = adsy_decode_reply(c->pt, (size_t)n, r) == ADSY_OK ? ADSY_NET_OK : ADSY_NET_PROTOCOL;
    SecureZeroMemory(c->pt, (size_t)n);
    return rc;
}

int adsy_conn_readable(adsy_conn *c, ULONGLONG until)
{
    return wait_socket(c->s, 0, until);
}

int adsy_conn_alive(adsy_conn *c)
{
    char b;
    if (c->s == INVALID_SOCKET)
        return 0;
    int n = recv(c->s, &b, 1, MSG_PEEK);
    if (n > 0)
        return 1;
    return n == SOCKET_ERROR && WSAGetLastError() == WSAEWOULDBLOCK;
}

static void free_buf(uint8_t **p, size_t n)
{
    if (*p) {
        SecureZeroMemory(*p, n);
        HeapFree(GetProcessHeap(), 0, *p);
        *p = NULL;
    }
}

void adsy_conn_close(adsy_conn *c)
{
    if (c->s != INVALID_SOCKET) {
        closesocket(c->s);
        c->s = INVALID_SOCKET;
    }
    free_buf(&c->rx, ADSY_SEALED_MAX);
    free_buf(&c->pt, ADSY_FRAME_MAX);
    free_buf(&c->tx, ADSY_CONN_TX);
    adsy_gcm_key_free(&c->out.aead);
    adsy_gcm_key_free(&c->in.aead);
    c->sealed = 0;
}

/* After AUTH_OK: both directions' keys (HKDF of the PSK and the nonces), counters at 0. */
static int start_sealing(adsy_conn *c, const uint8_t psk[32], const uint8_t cn[32],
                         const uint8_t sn[32])
{
    uint8_t c2d[32], d2c[32];
    int rc = adsy_session_keys(ADSY_MAC, psk, cn, sn, c2d, d2c);
    if (rc == ADSY_OK)
        rc = adsy_gcm_key(c2d, &c->out.aead);
    if (rc == ADSY_OK)
        rc = adsy_gcm_key(d2c, &c->in.aead);
    SecureZeroMemory(c2d, sizeof c2d);
    SecureZeroMemory(d2c, sizeof d2c);
    if (rc != ADSY_OK)
        return ADSY_NET_AUTH;
    c->sealed = 1;
    return ADSY_NET_OK;
}

static int handshake(adsy_conn *c, const uint8_t psk[32], ULONGLONG deadline)
{
    uint8_t cn[32], r_nonce[32], proof[32], buf[128];
    adsy_reply r;
    adsy_str name = {(const uint8_t *)ADSY_CLIENT_NAME, sizeof ADSY_CLIENT_NAME - 1};
    int rc;
    if (adsy_random(cn, sizeof cn) != ADSY_OK)
        return ADSY_NET_AUTH;
    long n = adsy_encode_hello(buf, sizeof buf, c->next_request_id++, cn, name);
    if (n < 0)
        return ADSY_NET_PROTOCOL;
    if ((rc = adsy_conn_send(c, buf, (size_t)n, deadline)) != ADSY_NET_OK)
        return rc;
    if ((rc = adsy_conn_recv(c, &r, deadline)) != ADSY_NET_OK)
        return rc;
    if (r.type != ADSY_T_CHALLENGE)
        return ADSY_NET_PROTOCOL;
    memcpy(r_nonce, r.nonce, sizeof r_nonce);
    /* The daemon proves the key first: a stranger on the port learns nothing. */
    if (adsy_hs_check_daemon(ADSY_MAC, psk, cn, r.nonce, r.proof) != ADSY_OK)
        return ADSY_NET_AUTH;
    if (adsy_hs_proof(ADSY_MAC, psk, 0, cn, r.nonce, proof) != ADSY_OK)
        return ADSY_NET_AUTH;
    n = adsy_encode_auth(buf, sizeof buf, c->next_request_id++, proof);
    SecureZeroMemory(proof, sizeof proof);
    if (n < 0)
        return ADSY_NET_PROTOCOL;
    if ((rc = adsy_conn_send(c, buf, (size_t)n, deadline)) != ADSY_NET_OK)
        return rc;
    if ((rc = adsy_conn_recv(c, &r, deadline)) != ADSY_NET_OK)
        return rc;
    if (r.type != ADSY_T_AUTH_OK)
        return ADSY_NET_AUTH;
    return start_sealing(c, psk, cn, r_nonce);
}

/* A refused loopback connect fails at once on Linux; on Windows the stack retransmits the
 * SYN after an RST for about 2 s. TCP_INITIAL_RTO_NO_SYN_RETRANSMISSIONS (Windows 10 1709+,
 * Server 2019+) turns that off for this socket. Older systems and wine refuse the ioctl:
 * harmless, the deadline still bounds the connect, and PasswordFilter skips the connect
 * altogether while the worker knows the daemon is down (g_daemon_down).
 * Microsoft: "SIO_TCP_INITIAL_RTO control code", TCP_INITIAL_RTO_PARAMETERS. */
static void fail_fast(SOCKET s)
{
    TCP_INITIAL_RTO_PARAMETERS p;
    DWORD got = 0;
    static volatile LONG reported;
    p.Rtt = TCP_INITIAL_RTO_UNSPECIFIED_RTT;
    p.MaxSynRetransmissions = TCP_INITIAL_RTO_NO_SYN_RETRANSMISSIONS;
    if (WSAIoctl(s, SIO_TCP_INITIAL_RTO, &p, sizeof p, NULL, 0, &got, NULL, NULL) != 0 &&
        InterlockedExchange(&reported, 1) == 0)
        adsy_log(ADSY_LOG_INFO, "syn_retransmissions_not_disabled", WSAGetLastError(), 1);
}

int adsy_conn_open(adsy_conn *c, DWORD port, const uint8_t psk[32], ULONGLONG deadline)
{
    memset(c, 0, sizeof *c);
    c->s = INVALID_SOCKET;
    c->next_request_id = 1;
    c->rx = HeapAlloc(GetProcessHeap(), 0, ADSY_SEALED_MAX);
    c->pt = HeapAlloc(GetProcessHeap(), 0, ADSY_FRAME_MAX);
    c->tx = HeapAlloc(GetProcessHeap(), 0, ADSY_CONN_TX);
    if (!c->rx || !c->pt || !c->tx) {
        adsy_conn_close(c);
        return ADSY_NET_NOMEM;
    }
    c->s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (c->s == INVALID_SOCKET) {
        adsy_conn_close(c);
        return ADSY_NET_SOCKET;
    }
    u_long nb = 1;
    if (ioctlsocket(c->s, FIONBIO, &nb) != 0) {
        /* a blocking socket would let connect/send/recv outlive the deadline */
        adsy_conn_close(c);
        return ADSY_NET_SOCKET;
    }
    fail_fast(c->s);
    BOOL one = TRUE;
    setsockopt(c->s, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((u_short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = ADSY_NET_OK;
    if (connect(c->s, (struct sockaddr *)&a, sizeof a) == SOCKET_ERROR) {
        if (WSAGetLastError() != WSAEWOULDBLOCK) {
            rc = ADSY_NET_CLOSED;
        } else if ((rc = wait_socket(c->s, 1, deadline)) == ADSY_NET_OK) {
            int err = 0, len = sizeof err;
            getsockopt(c->s, SOL_SOCKET, SO_ERROR, (char *)&err, &len);
            if (err != 0)
                rc = ADSY_NET_CLOSED;
        }
    }
    if (rc == ADSY_NET_OK)
        rc = handshake(c, psk, deadline);
    if (rc != ADSY_NET_OK)
        adsy_conn_close(c);
    return rc;
}
