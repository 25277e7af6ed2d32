"""What tests make requests with: the user agents of real browsers and of non-browser clients."""

from __future__ import annotations

BROWSERS = {
    "chrome": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Safari/537.36",
    "firefox": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "safari": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "Version/18.1 Safari/605.1.15",
    "edge": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "ios-safari": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                  "Version/18.1 Mobile/15E148 Safari/604.1",
    "android-chrome": "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
                      "Chrome/131.0.0.0 Mobile Safari/537.36",
    "ios-chrome": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                  "CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
    "firefox-android": "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
    "samsung": "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
               "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "opera": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
    "ie11": "Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko",
}

NON_BROWSERS = {
    "curl": "curl/8.5.0",
    "wget": "Wget/1.21.4",
    "node": "node",
    "node-fetch": "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "deno": "Deno/2.1.4",
    "bun": "Bun/1.1.38",
    "python-httpx": "python-httpx/0.28.1",
    "python-requests": "python-requests/2.32.3",
    "aiohttp": "Python/3.12 aiohttp/3.11.10",
    "go": "Go-http-client/1.1",
    "dart": "Dart/3.5 (dart:io)",
    "java": "Java-http-client/21.0.5",
    "okhttp": "okhttp/4.12.0",
    "powershell": "Mozilla/5.0 (Windows NT 10.0; Microsoft Windows 10.0.22631; en-US) PowerShell/7.4.6",
    "windows-powershell": "Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.22621.4391",
    "react-native-ios": "MyApp/1 CFNetwork/1568.200.51 Darwin/24.1.0",
    "postgrest-js": "postgrest-js/1.17.7",
    "googlebot": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
}
