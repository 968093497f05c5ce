package dev.guardsdk.core;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PublicKey;
import java.security.Signature;
import java.security.spec.X509EncodedKeySpec;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * The bundle signature of guard_sdk.signing, checked the same way: guard.sig beside guard.json holds {"algorithm":
 * "ed25519", "key_id", "signature" (base64)}, an Ed25519 signature of guard.json's exact bytes, which hold every
 * file's sha256. Uses the JDK's Ed25519 (Java 15+; Android 13+ through Conscrypt).
 */
public final class BundleSignature {
  public static final String FILE = "guard.sig";
  static final long MAX_BYTES = 4096;
  // An Ed25519 SubjectPublicKeyInfo is this 12-byte header and the 32-byte raw key.
  private static final int RAW_KEY_BYTES = 32;

  private BundleSignature() {}

  /** An Ed25519 public key from the text of a PEM file (SubjectPublicKeyInfo), as guard-sdk keygen writes it. */
  public static PublicKey publicKey(String pem) throws GuardException {
    String body = pem.replaceAll("-----(BEGIN|END) PUBLIC KEY-----", "").replaceAll("\\s", "");
    try {
      return KeyFactory.getInstance("Ed25519").generatePublic(new X509EncodedKeySpec(Base64.getDecoder().decode(body)));
    } catch (GeneralSecurityException | IllegalArgumentException e) {
      throw new GuardException(GuardException.Reason.SIGNATURE, "not an Ed25519 PEM public key: " + e.getMessage(), e);
    }
  }

  /** The first 16 hex digits of the sha256 of the key's 32 raw bytes: how guard.sig names its signer. */
  public static String keyId(PublicKey key) {
    byte[] encoded = key.getEncoded();
    byte[] raw = Arrays.copyOfRange(encoded, encoded.length - RAW_KEY_BYTES, encoded.length);
    return FileEntry.sha256Of(raw).substring(0, 16);
  }

  /**
   * The key id of the trusted key whose signature in {@code bundle}/guard.sig verifies {@code manifestBytes}; a
   * SIGNATURE refusal for a missing, malformed or untrusted signature.
   */
  public static String verify(File bundle, byte[] manifestBytes, List<PublicKey> trusted) throws GuardException {
    if (trusted.isEmpty()) {
      throw new GuardException(GuardException.Reason.SIGNATURE, "no trusted key given");
    }
    if (!new File(bundle, FILE).exists()) {
      throw new GuardException(GuardException.Reason.SIGNATURE,
          FILE + " is missing: the bundle is not signed, and trusted keys were given");
    }
    String signer;
    byte[] signature;
    try {
      JSONObject record =
          new JSONObject(new String(BundleFiles.read(bundle, FILE, -1, MAX_BYTES), StandardCharsets.UTF_8));
      if (!record.getString("algorithm").equals("ed25519")) {
        throw new GuardException(GuardException.Reason.SIGNATURE,
            FILE + ": algorithm " + record.getString("algorithm") + "; only ed25519 is verified");
      }
      signer = record.getString("key_id");
      signature = Base64.getDecoder().decode(record.getString("signature"));
    } catch (JSONException | IllegalArgumentException e) {
      throw new GuardException(GuardException.Reason.SIGNATURE, FILE + " is not a signature record: " + e.getMessage(), e);
    } catch (GuardException e) {
      if (e.reason() == GuardException.Reason.SIGNATURE) {
        throw e;
      }
      throw new GuardException(GuardException.Reason.SIGNATURE, e.getMessage(), e);
    }
    for (PublicKey key : trusted) {
      if (!keyId(key).equals(signer)) {
        continue;
      }
      boolean valid;
      try {
        Signature check = Signature.getInstance("Ed25519");
        check.initVerify(key);
        check.update(manifestBytes);
        valid = check.verify(signature);
      } catch (GeneralSecurityException e) {
        valid = false;
      }
      if (!valid) {
        throw new GuardException(GuardException.Reason.SIGNATURE,
            "the signature of key " + signer + " does not match guard.json: the bundle was changed after signing");
      }
      return signer;
    }
    throw new GuardException(GuardException.Reason.SIGNATURE,
        FILE + " is signed by key " + signer + ", which is not among the " + trusted.size() + " trusted key(s)");
  }
}
