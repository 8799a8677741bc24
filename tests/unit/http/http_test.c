/* Tests for http/http.c helpers: http_lower_copy against a byte-at-a-time reference for every
 * byte value in every position of an 8-byte word and every length, and in place. */
#include "http/http.h"
#include "test.h"

static unsigned char
ref_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static void
test_lower_copy_every_byte(void)
{
    int bad = 0;
    for (int b = 0; b < 256; b++) {
        for (int pos = 0; pos < 24; pos++) {
            char src[24], dst[24];
            for (int i = 0; i < 24; i++)
                src[i] = (char)((b * 7 + i * 37 + 11) & 0xff); /* varied neighbours */
            src[pos] = (char)b;
            http_lower_copy(dst, src, 24);
            for (int i = 0; i < 24; i++)
                bad += (unsigned char)dst[i] != ref_lower((unsigned char)src[i]);
        }
    }
    CHECK_EQ_INT(bad, 0);
}

static void
test_lower_copy_lengths(void)
{
    const char *in = "Content-Type X-REQUEST-ID Strict-Transport-Security @[`{ \x80\xc1\xda\xff";
    size_t n = strlen(in);
    for (size_t len = 0; len <= n; len++) {
        char dst[128];
        memset(dst, '#', sizeof(dst));
        http_lower_copy(dst, in, len);
        int ok = 1;
        for (size_t i = 0; i < len; i++)
            ok &= (unsigned char)dst[i] == ref_lower((unsigned char)in[i]);
        CHECK(ok);
        CHECK(dst[len] == '#'); /* nothing written past n */
    }
    char buf[] = "Mixed-CASE-Name-With-Many-Letters";
    http_lower_copy(buf, buf, strlen(buf)); /* in place */
    CHECK(strcmp(buf, "mixed-case-name-with-many-letters") == 0);
}

int
main(void)
{
    RUN(test_lower_copy_every_byte);
    RUN(test_lower_copy_lengths);
    TEST_MAIN_END();
}
