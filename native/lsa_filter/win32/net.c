/* Winsock client for the TCP loopback transport: every call is bounded by a deadline
 * (GetTickCount64 ms), so neither LSASS's thread nor the worker can hang on the daemon. */
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

int adsy_conn_send(adsy_conn *c, const uint8_t *buf, size_t len, ULONGLONG deadline)
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
    if (adsy_frame_length(prefix, ADSY_FRAME_MAX, &len) != ADSY_OK)
        return ADSY_NET_PROTOCOL;
    rc = recv_exact(c, c->rx, len, deadline);
    if (rc != ADSY_NET_OK)
        return rc;
    return adsy_decode_reply(c->rx, len, r) == ADSY_OK ? ADSY_NET_OK : ADSY_NET_PROTOCOL;
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

void adsy_conn_close(adsy_conn *c)
{
    if (c->s != INVALID_SOCKET) {
        closesocket(c->s);
        c->s = INVALID_SOCKET;
    }
    if (c->rx) {
        SecureZeroMemory(c->rx, ADSY_FRAME_MAX);
        HeapFree(GetProcessHeap(), 0, c->rx);
        c->rx = NULL;
    }
}

static int handshake(adsy_conn *c, const uint8_t psk[32], ULONGLONG deadline)
{
    uint8_t cn[32], proof[32], buf[128];
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
    return r.type == ADSY_T_AUTH_OK ? ADSY_NET_OK : ADSY_NET_AUTH;
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
    c->s = INVALID_SOCKET;
    c->next_request_id = 1;
    c->rx = HeapAlloc(GetProcessHeap(), 0, ADSY_FRAME_MAX);
    if (!c->rx)
        return ADSY_NET_NOMEM;
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
