// Bearer tokens: 256 random bits, kept by the broker only as a SHA-256 digest. A token is found by
// its id (the digest's first 16 hex digits) and then checked against the whole digest in constant
// time, so neither the lookup nor the comparison tells an attacker how close a guess was.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

const PREFIX = "pgm_";

export function generateToken(): string {
  return PREFIX + randomBytes(32).toString("base64url");
}

export function tokenDigest(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

export function tokenId(digest: Buffer): string {
  return digest.subarray(0, 8).toString("hex");
}

export function sameDigest(stored: Buffer, presented: Buffer): boolean {
  return stored.length === presented.length && timingSafeEqual(stored, presented);
}
