package dev.guardsdk.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyPairGenerator;
import java.security.PublicKey;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A bundle signed by guard-sdk sign (Python, the cryptography package) opens with its public key here (the JDK's
 * Ed25519), and every change after signing, another key or no signature is a SIGNATURE refusal. The signed copy
 * and its key come from tests/test_android.py: -Dguard.vectors/signed and -Dguard.vectors/trusted.pub.pem.
 */
class SignatureTest {
  @TempDir Path tmp;
  File bundle;
  PublicKey trusted;

  @BeforeEach
  void copySignedBundle() throws IOException, GuardException {
    File source = new File(System.getProperty("guard.vectors"), "signed");
    assertTrue(new File(source, BundleSignature.FILE).isFile(), "no signed bundle at " + source);
    bundle = tmp.resolve("bundle").toFile();
    assertTrue(bundle.mkdir());
    for (String name : new String[] {Manifest.FILE, BundleSignature.FILE, "tokenizer.json", "model.int8.pte"}) {
      Files.copy(new File(source, name).toPath(), new File(bundle, name).toPath());
    }
    File pem = new File(System.getProperty("guard.vectors"), "trusted.pub.pem");
    trusted = BundleSignature.publicKey(new String(Files.readAllBytes(pem.toPath()), StandardCharsets.UTF_8));
  }

  private GuardException refusal(List<PublicKey> keys) {
    GuardException e = assertThrows(GuardException.class, () -> GuardBundle.open(bundle, "executorch", keys, "int8"));
    assertEquals(GuardException.Reason.SIGNATURE, e.reason(), e.getMessage());
    return e;
  }

  @Test
  void aBundleSignedInPythonOpensWithItsKeyAndTheSameKeyId() throws Exception {
    GuardBundle opened = GuardBundle.open(bundle, "executorch", List.of(trusted), "int8");
    assertEquals("model.int8.pte", opened.modelFile.getName());
    String record = new String(Files.readAllBytes(new File(bundle, BundleSignature.FILE).toPath()),
        StandardCharsets.UTF_8);
    assertTrue(record.contains("\"key_id\": \"" + BundleSignature.keyId(trusted) + "\""), record);
  }

  @Test
  void anyChangeToGuardJsonAfterSigningIsRefused() throws IOException {
    File file = new File(bundle, Manifest.FILE);
    String text = new String(Files.readAllBytes(file.toPath()), StandardCharsets.UTF_8);
    Files.write(file.toPath(), text.replaceFirst("\"name\": \"", "\"name\": \"x").getBytes(StandardCharsets.UTF_8));
    assertTrue(refusal(List.of(trusted)).getMessage().contains("changed after signing"));
  }

  @Test
  void anotherKeyIsRefused() throws GeneralSecurityException {
    PublicKey other = KeyPairGenerator.getInstance("Ed25519").generateKeyPair().getPublic();
    assertTrue(refusal(List.of(other)).getMessage().contains("not among"));
  }

  @Test
  void anUnsignedBundleIsRefusedWithKeysAndOpensWithout() throws GuardException {
    assertTrue(new File(bundle, BundleSignature.FILE).delete());
    assertTrue(refusal(List.of(trusted)).getMessage().contains("missing"));
    GuardBundle.open(bundle, "executorch", "int8");
    assertEquals(GuardException.Reason.INPUT, assertThrows(GuardException.class,
        () -> GuardBundle.open(bundle, "executorch", Collections.emptyList(), "int8")).reason());
  }
}
