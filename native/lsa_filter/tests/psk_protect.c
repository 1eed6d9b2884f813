/* Test helper (wine): seals a raw 32-byte key file the way install.ps1 does, with DPAPI
 * (machine scope, entropy "adsync/1 filter psk").  psk_protect.exe RAW OUT */
#include <windows.h>
#include <wincrypt.h>
#include <stdio.h>

int wmain(int argc, wchar_t **argv)
{
    BYTE key[32];
    static const char ent_s[] = "adsync/1 filter psk";
    if (argc != 3)
        return 2;
    FILE *f = _wfopen(argv[1], L"rb");
    if (!f || fread(key, 1, 32, f) != 32)
        return 3;
    fclose(f);
    DATA_BLOB in = {32, key}, ent = {sizeof ent_s - 1, (BYTE *)ent_s}, out = {0, NULL};
    if (!CryptProtectData(&in, L"adsync filter psk", &ent, NULL, NULL,
                          CRYPTPROTECT_LOCAL_MACHINE | CRYPTPROTECT_UI_FORBIDDEN, &out))
        return 4;
    f = _wfopen(argv[2], L"wb");
    if (!f || fwrite(out.pbData, 1, out.cbData, f) != out.cbData)
        return 5;
    fclose(f);
    SecureZeroMemory(key, sizeof key);
    LocalFree(out.pbData);
    return 0;
}
