// A key's rate limits as a card states them. Pure: no DOM.

export function limitsText(limits) {
  const perKey = limits?.per_key;
  const perIp = limits?.per_ip;
  if (!perKey && !perIp) return "Configured defaults";
  if (perKey && perIp) return `${perKey} per key, ${perIp} per IP`;
  return perKey ? `${perKey} per key (per IP: default)` : `${perIp} per IP (per key: default)`;
}
