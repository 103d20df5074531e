/*
 * rawpbx.h — what the raw PBX buddies share (tests/slowpbx, tests/tlsplay):
 * plain sockets and OpenSSL, no libwebsockets. Header-only (static
 * functions), so each buddy still builds from its one .c file.
 */
#ifndef W2K_TESTS_RAWPBX_H
#define W2K_TESTS_RAWPBX_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#define RAWPBX_REQ_MAX	8192	/* the upgrade request */
#define RAWPBX_WS_GUID	"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* PORT and a newline in path, through a temp file and rename(). */
static int
rawpbx_write_port_file(const char *path, int port)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL)
		return -1;
	fprintf(f, "%d\n", port);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		return -1;
	return 0;
}

/*
 * A listening socket on 127.0.0.1, port chosen by the kernel and written
 * to port_file; -1 (errno set) on failure. *port: the port.
 */
static int
rawpbx_listen(const char *port_file, int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t salen = sizeof(sa);
	int fd, one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, 16) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &salen) != 0 ||
	    rawpbx_write_port_file(port_file, ntohs(sa.sin_port)) != 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

/*
 * Read the client's upgrade request from ssl and fill accept with its
 * Sec-WebSocket-Accept value. Bytes after the request (the first frames)
 * go to rest (up to restcap; *restlen: how many) when rest is not NULL.
 */
static int
rawpbx_read_upgrade(SSL *ssl, char *accept, size_t acceptlen,
    unsigned char *rest, size_t restcap, size_t *restlen)
{
	char req[RAWPBX_REQ_MAX + 1], *k, *e, cat[256];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	size_t len = 0;
	int n;

	while (len < RAWPBX_REQ_MAX) {
		n = SSL_read(ssl, req + len, (int)(RAWPBX_REQ_MAX - len));
		if (n <= 0)
			return -1;
		len += (size_t)n;
		req[len] = '\0';
		if (strstr(req, "\r\n\r\n") != NULL)
			break;
	}
	if ((k = strcasestr(req, "\r\nSec-WebSocket-Key:")) == NULL)
		return -1;
	k += strlen("\r\nSec-WebSocket-Key:");
	while (*k == ' ')
		k++;
	if ((e = strstr(k, "\r\n")) == NULL || (size_t)(e - k) > 64)
		return -1;
	snprintf(cat, sizeof(cat), "%.*s%s", (int)(e - k), k, RAWPBX_WS_GUID);
	if (!EVP_Digest(cat, strlen(cat), md, &mdlen, EVP_sha1(), NULL) ||
	    acceptlen < 4 * ((mdlen + 2) / 3) + 1)
		return -1;
	EVP_EncodeBlock((unsigned char *)accept, md, (int)mdlen);
	if (rest != NULL) {
		e = strstr(req, "\r\n\r\n") + 4;
		*restlen = (size_t)(req + len - e);
		if (*restlen > restcap)
			return -1;
		memcpy(rest, e, *restlen);
	}
	return 0;
}

#endif
