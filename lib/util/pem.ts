/** The `-----BEGIN CERTIFICATE-----` ... `-----END CERTIFICATE-----` blocks of PEM text, in order. */
export function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
}
