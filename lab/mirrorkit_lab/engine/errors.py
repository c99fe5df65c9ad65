"""SQL Server messages the lab raises: number, severity and template.

Templates follow the documented message texts (docs/relational-databases/
errors-events/database-engine-events-and-errors-*.md); SQL Server's printf
placeholders (%.*ls, %d, %S_MSG) are written here as {}. docs/lab-fidelity.md
lists where a number or wording is inferred.
"""
from __future__ import annotations

from .results import Message

# number: (severity, template)
MESSAGES: dict[int, tuple[int, str]] = {
    # syntax and name resolution
    102: (15, "Incorrect syntax near '{}'."),
    103: (15, "The {} that starts with '{}' is too long. Maximum length is {}."),
    105: (15, "Unclosed quotation mark after the character string '{}'."),
    113: (15, "Missing end comment mark '*/'."),
    108: (15, "The ORDER BY position number {} is out of range of the number of items in the select list."),
    116: (16, "Only one expression can be specified in the select list when the subquery is not introduced with EXISTS."),
    119: (15, "Must pass parameter number {} and subsequent parameters as '@name = value'. After the form '@name = value' has been used, all subsequent parameters must be passed in the form '@name = value'."),
    134: (15, "The variable name '{}' has already been declared. Variable names must be unique within a query batch or stored procedure."),
    137: (15, 'Must declare the scalar variable "{}".'),
    156: (15, "Incorrect syntax near the keyword '{}'."),
    141: (15, "A SELECT statement that assigns a value to a variable must not be combined with data-retrieval operations."),
    174: (15, "The {} function requires {} argument(s)."),
    189: (15, "The {} function requires {} to {} arguments."),
    195: (15, "'{}' is not a recognized built-in function name."),
    205: (16, "All queries combined using a UNION, INTERSECT or EXCEPT operator must have an equal number of expressions in their target lists."),
    207: (16, "Invalid column name '{}'."),
    208: (16, "Invalid object name '{}'."),
    209: (16, "Ambiguous column name '{}'."),
    241: (16, "Conversion failed when converting date and/or time from character string."),
    245: (16, "Conversion failed when converting the {} value '{}' to data type {}."),
    257: (16, "Implicit conversion from data type {} to {} is not allowed. Use the CONVERT function to run this query."),
    263: (16, "Must specify table to select from."),
    402: (16, "The data types {} and {} are incompatible in the {} operator."),
    512: (16, "Subquery returned more than 1 value. This is not permitted when the subquery follows =, !=, <, <= , >, >= or when the subquery is used as an expression."),
    537: (16, "Invalid length parameter passed to the LEFT or SUBSTRING function."),
    155: (15, "'{}' is not a recognized datepart option."),
    574: (16, "{} statement cannot be used inside a user transaction."),
    911: (16, "Database '{}' does not exist. Make sure that the name is entered correctly."),
    1013: (16, 'The objects "{}" and "{}" in the FROM clause have the same exposed names. Use correlation names to distinguish them.'),
    1205: (13, "Transaction (Process ID {}) was deadlocked on lock resources with another process and has been chosen as the deadlock victim. Rerun the transaction."),
    1222: (16, "Lock request time out period exceeded."),
    2714: (16, "There is already an object named '{}' in the database."),
    2715: (16, "Column, parameter, or variable #{}: Cannot find data type {}."),
    8169: (16, "Conversion failed when converting from a character string to uniqueidentifier."),
    2812: (16, "Could not find stored procedure '{}'."),
    3902: (16, "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION."),
    3903: (16, "The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION."),
    3701: (11, "Cannot drop the {} '{}', because it does not exist or you do not have permission."),
    4104: (16, 'The multi-part identifier "{}" could not be bound.'),
    4621: (16, "Permissions at the server scope can only be granted when the current database is master"),
    4622: (16, "Permissions at the server scope can only be granted to logins"),
    5701: (0, "Changed database context to '{}'."),
    5703: (0, "Changed language setting to {}."),
    8114: (16, "Error converting data type {} to {}."),
    8115: (16, "Arithmetic overflow error converting {} to data type {}."),
    8134: (16, "Divide by zero error encountered."),
    8144: (16, "Procedure or function {} has too many arguments specified."),
    8145: (16, "{} is not a parameter for procedure {}."),
    8178: (16, "The parameterized query '{}' expects the parameter '{}', which was not supplied."),
    8179: (16, "Could not find prepared statement with handle {}."),
    201: (16, "Procedure or function '{}' expects parameter '{}', which was not supplied."),
    # databases, tables, rows
    109: (15, "There are more columns in the INSERT statement than values specified in the VALUES clause. The number of values in the VALUES clause must match the number of columns specified in the INSERT statement."),
    110: (15, "There are fewer columns in the INSERT statement than values specified in the VALUES clause. The number of values in the VALUES clause must match the number of columns specified in the INSERT statement."),
    120: (15, "The select list for the INSERT statement contains fewer items than the insert list. The number of SELECT values must match the number of INSERT columns."),
    121: (15, "The select list for the INSERT statement contains more items than the insert list. The number of SELECT values must match the number of INSERT columns."),
    226: (16, "{} statement not allowed within multi-statement transaction."),
    229: (14, "The {} permission was denied on the object '{}', database '{}', schema '{}'."),
    259: (16, "Ad hoc updates to system catalogs are not allowed."),
    262: (14, "{} permission denied in database '{}'."),
    264: (16, "The column name '{}' is specified more than once in the SET clause or column list of an INSERT. A column cannot be assigned more than one value in the same clause. Modify the clause to make sure that a column is updated only once. If this statement updates or inserts columns into a view, column aliasing can conceal the duplication in your code."),
    515: (16, "Cannot insert the value NULL into column '{}', table '{}'; column does not allow nulls. {} fails."),
    544: (16, "Cannot insert explicit value for identity column in table '{}' when IDENTITY_INSERT is set to OFF."),
    922: (14, "Database '{}' is being recovered. Waiting until recovery is finished."),
    927: (14, "Database '{}' cannot be opened. It is in the middle of a restore."),
    942: (14, "Database '{}' cannot be opened because it is offline."),
    1801: (16, "Database '{}' already exists. Choose a different database name."),
    1802: (16, "CREATE DATABASE failed. Some file names listed could not be created. Check related errors."),
    1828: (16, "The logical file name \"{}\" is already in use. Choose a different name."),
    1911: (16, "Column name '{}' does not exist in the target table or view."),
    2627: (14, "Violation of {} constraint '{}'. Cannot insert duplicate key in object '{}'. The duplicate key value is ({})."),
    2628: (16, "String or binary data would be truncated in table '{}', column '{}'. Truncated value: '{}'."),
    2705: (16, "Column names in each table must be unique. Column name '{}' in table '{}' is specified more than once."),
    3021: (16, "Cannot perform a backup or restore operation within a transaction."),
    3702: (16, 'Cannot drop database "{}" because it is currently in use.'),
    3708: (16, "Cannot drop the database '{}' because it is a system database."),
    3906: (16, 'Failed to update database "{}" because the database is read-only.'),
    5011: (14, "User does not have permission to alter database '{}', the database does not exist, or the database is not in a state that allows access checks."),
    5061: (16, "ALTER DATABASE failed because a lock could not be placed on database '{}'. Try again later."),
    2760: (16, 'The specified schema name "{}" either does not exist or you do not have permission to use it.'),
    5058: (16, "Option '{}' cannot be set in database '{}'."),
    5170: (16, "Cannot create file '{}' because it already exists. Change the file path or the file name, and retry the operation."),
    8102: (16, "Cannot update identity column '{}'."),
    8111: (16, "Cannot define PRIMARY KEY constraint on nullable column in table '{}'."),
    8110: (16, "Cannot add multiple PRIMARY KEY constraints to table '{}'."),
    # database mirroring (docs: database-engine-events-and-errors-1000-1999; two spaces between
    # sentences, as sys.messages has them: reference spec §0)
    954: (14, 'The database "{}" cannot be opened. It is acting as the mirror database in a database mirroring session.'),
    955: (14, "Database {} is enabled for Database Mirroring, but the database lacks quorum: the database cannot be opened.  Check the partner and witness connections if configured."),
    1404: (16, "The command failed because the database mirror is busy. Reissue the command later."),
    1405: (16, 'The database "{}" is already enabled for database mirroring.'),
    1406: (16, 'Unable to force service safely. Remove database mirroring and recover database "{}" to gain access.'),
    1407: (16, 'The remote copy of database "{}" is not related to the local copy of the database.'),
    1412: (16, 'The remote copy of database "{}" has not been rolled forward to a point in time that is encompassed in the local copy of the database log.'),
    1416: (16, 'Database "{}" is not configured for database mirroring.'),
    1418: (16, 'The server network address "{}" can not be reached or does not exist. Check the network address name and that the ports for the local and remote endpoints are operational.'),
    1422: (16, 'The mirror server instance is not caught up to the recent changes to database "{}". Unable to fail over.'),
    1426: (16, "To issue ALTER DATABASE SET WITNESS, all three server instances must be interconnected, and the mirror database must be caught up.  When these conditions are met, reissue the command."),
    1427: (16, "The server instance '{}' could not act as the witness. The ALTER DATABASE SET WITNESS command failed."),
    1429: (16, "The witness server instance name must be distinct from both of the server instances that manage the database. The ALTER DATABASE SET WITNESS command failed."),
    1431: (16, 'Neither the partner nor the witness server instance for database "{}" is available. Reissue the command when at least one of the instances becomes available.'),
    1439: (16, 'There is currently no witness associated with database "{}".'),
    1443: (10, "Database mirroring has been terminated for database '{}'. This is an informational message only. No user action is required."),
    1447: (16, 'ALTER DATABASE "{}" command cannot be executed until both partner server instances are up, running, and connected. Start the partner and reissue the command.'),
    1448: (16, 'The remote copy of database "{}" does not exist. Check the database name and reissue the command.'),
    1452: (16, "The partner server instance name must be distinct from the server instance that manages the database. The ALTER DATABASE SET PARTNER command failed."),
    1455: (16, 'The database mirroring service cannot be forced for database "{}" because the database is not in the correct state to become the principal database.'),
    1456: (16, "The ALTER DATABASE command could not be sent to the remote server instance '{}'. The database mirroring configuration was not changed. Verify that the server is connected, and try again."),
    1460: (16, 'The database "{}" is already configured for database mirroring on the remote server. Drop database mirroring on the remote server to establish a new partner.'),
    1464: (16, 'Database mirroring cannot be enabled for the remote copy of database "{}" because the database is not in a recovering state. The remote database must be restored using WITH NORECOVERY.'),
    1465: (16, 'Database mirroring cannot be enabled because the "{}" database is not in full recovery mode on both partners.'),
    1468: (16, 'The operation cannot be performed on database "{}" because it is involved in a database mirroring session.'),
    1470: (16, 'The alter database for this partner config values may only be initiated on the current principal server for database "{}".'),
    1476: (16, "Database mirroring timeout value {} exceeds the maximum value 32767."),
    1477: (16, 'The database mirroring safety level must be FULL to manually failover database "{}". Set safety level to FULL and retry.'),
    1478: (16, 'The mirror database, "{}", has insufficient transaction log data to preserve the log backup chain of the principal database.  This may happen if a log backup from the principal database has not been taken or has not been restored on the mirror database.'),
    # backup and restore (docs: database-engine-events-and-errors-1000-to-1999, -3000-to-3999, -4000-to-4999)
    1834: (16, "The file '{}' cannot be overwritten. It is being used by database '{}'."),
    3013: (16, "{} is terminating abnormally."),
    3014: (10, "{} successfully processed {} pages in {} seconds ({} MB/sec)."),
    3101: (16, "Exclusive access could not be obtained because the database is in use."),
    3102: (16, "{} cannot process database '{}' because it is in use by this session. It is recommended that the master database be used when performing this operation."),
    3108: (16, "To restore the master database, the server must be running in single-user mode. For information on starting in single-user mode, see \"How to: Start an Instance of SQL Server (sqlservr.exe)\" in Books Online."),
    3110: (14, "User does not have permission to RESTORE database '{}'."),
    3117: (16, "The log or differential backup cannot be restored because no files are ready to rollforward."),
    3118: (16, "The database \"{}\" does not exist. RESTORE can only create a database when restoring either a full backup or a file backup of the primary file."),
    3119: (16, "Problems were identified while planning for the RESTORE statement. Previous messages provide details."),
    3132: (16, "The media set has {} media families but only {} are provided. All members must be provided."),
    3135: (16, "The backup set in file '{}' was created by {} and cannot be used for this restore operation."),
    3147: (16, "Backup and restore operations are not allowed on database tempdb."),
    3153: (16, "The database is already fully recovered."),
    3154: (16, "The backup set holds a backup of a database other than the existing '{}' database."),
    3156: (16, "File '{}' cannot be restored to '{}'. Use WITH MOVE to identify a valid location for the file."),
    3159: (16, "The tail of the log for the database \"{}\" has not been backed up. Use BACKUP LOG WITH NORECOVERY to backup the log if it contains work you do not want to lose. Use the WITH REPLACE or WITH STOPAT clause of the RESTORE statement to just overwrite the contents of the log."),
    3189: (16, "Damage to the backup set was detected."),
    3201: (16, "Cannot open backup device '{}'. Operating system error {}."),
    3203: (16, "Read on \"{}\" failed: {}"),
    3202: (16, "Write on \"{}\" failed: {}"),
    3211: (10, "{} percent processed."),
    3231: (16, "The media loaded on \"{}\" is formatted to support {} media families, but {} media families are expected according to the backup device specification."),
    3234: (16, "Logical file '{}' is not part of database '{}'. Use RESTORE FILELISTONLY to list the logical file names."),
    3241: (16, "The media family on device '{}' is incorrectly formed. SQL Server cannot process this media family."),
    3262: (10, "The backup set on file {} is valid."),
    4035: (10, "Processed {} pages for database '{}', file '{}' on file {}."),
    4037: (16, "The user-specified MEDIANAME \"{}\" does not match the MEDIANAME \"{}\" of the device \"{}\"."),
    4038: (16, "Cannot find file ID {} on device '{}'."),
    4208: (16, "The statement {} is not allowed while the recovery model is SIMPLE. Use BACKUP DATABASE or change the recovery model using ALTER DATABASE."),
    4212: (16, "Cannot back up the log of the master database. Use BACKUP DATABASE instead."),
    4214: (16, "BACKUP LOG cannot be performed because there is no current database backup."),
    4305: (16, "The log in this backup set begins at LSN {}, which is too recent to apply to the database. An earlier log backup that includes LSN {} can be restored."),
    4326: (16, "The log in this backup set terminates at LSN {}, which is too early to apply to the database. A more recent log backup that includes LSN {} can be restored."),
    4353: (16, "Conflicting file relocations have been specified for file '{}'. Only a single WITH MOVE clause should be specified for any logical file name."),
    # endpoints
    7860: (15, "An endpoint's transport or content cannot be changed through the ALTER ENDPOINT statement. Use DROP ENDPOINT and execute the CREATE ENDPOINT statement to make these changes."),
    7862: (16, "An endpoint of the requested type already exists. Only one endpoint of this type is supported. Use ALTER ENDPOINT or DROP the existing endpoint and execute the CREATE ENDPOINT statement."),
    7863: (16, "The endpoint was not changed. The ALTER ENDPOINT statement did not contain any values to modify or update."),
    7864: (16, "CREATE/ALTER ENDPOINT cannot be used to update the endpoint with this information. The Dedicated Administrator Connection endpoint is reserved and cannot be updated."),
    7869: (16, "The endpoint name '{}' is reserved for used by SQL. Endpoint names cannot begin with '{}'."),
    7873: (16, 'The endpoint "{}" is a built-in endpoint and cannot be dropped. Use the protocol configuration utilities to ADD or DROP Transact-SQL endpoints.'),
    7874: (16, "An endpoint already exists with the bindings specified. Only one endpoint supported for a specific binding. Use ALTER ENDPOINT or DROP the existing endpoint and execute the CREATE ENDPOINT statement."),
    7888: (20, "The IPv6 address specified is not supported. The server may not be configured to allow for IPv6 connectivity, or the address may not be in a recognized IPv6 format."),
    7890: (16, "An error occurred while attempting to register the endpoint '{}'. One or more of the ports specified in the CREATE ENDPOINT statement may be bound to another process. Attempt the statement again with a different port or use netstat to find the application currently using the port and resolve the conflict."),
    9692: (16, "The {} protocol transport cannot listen on port {} because it is in use by another process."),
    # principals, keys and certificates
    15007: (16, "'{}' is not a valid login or you do not have permission."),
    15010: (16, "The database '{}' does not exist. Supply a valid database name. To see available databases, use sys.databases."),
    15023: (16, "User, group, or role '{}' already exists in the current database."),
    15025: (16, "The server principal '{}' already exists."),
    15063: (16, "The login already has an account under a different user name."),
    15099: (16, "The MUST_CHANGE option cannot be used when CHECK_EXPIRATION is OFF."),
    15116: (16, "Password validation failed. The password does not meet the operating system policy requirements because it is too short."),
    15117: (16, "Password validation failed. The password does not meet the operating system policy requirements because it is too long."),
    15118: (16, "Password validation failed. The password does not meet the operating system policy requirements because it is not complex enough."),
    15122: (16, "The CHECK_EXPIRATION option cannot be used when CHECK_POLICY is OFF."),
    15138: (16, "The database principal owns a {} in the database, and cannot be dropped."),
    15141: (16, "The server principal owns one or more {}(s) and cannot be dropped."),
    15150: (16, "Cannot drop the user '{}'."),
    15151: (16, "Cannot {} the {} '{}', because it does not exist or you do not have permission."),
    15208: (16, "The certificate, asymmetric key, or private key file is not valid or does not exist; or you do not have permissions for it."),
    15212: (16, "Invalid certificate subject. The certificate subject must have between 1 and {} characters."),
    15213: (10, "Warning: The certificate you created has an invalid validity period; its expiration date precedes its start date."),
    15214: (10, "Warning: The certificate you created is expired."),
    15215: (10, "Warning: The certificate you created is not yet valid; its start date is in the future."),
    15232: (16, "A certificate with name '{}' already exists or this certificate already has been added to the database."),
    15240: (16, "Cannot write into file '{}'. Verify that you have write permissions, that the file path is valid, and that the file does not already exist."),
    15246: (16, "Cannot dump the private key of certificate '{}' because the private key cannot be found."),
    15247: (16, "User does not have permission to perform this action."),
    15313: (16, "The key is not encrypted using the specified decryptor."),
    15329: (16, "The current master key cannot be decrypted. If this is a database master key, you should attempt to open it in the session before performing this operation. The FORCE option can be used to ignore this error and continue the operation but the data encrypted by the old master key will be lost."),
    15352: (16, "The {} cannot be dropped because one or more entities are either signed or encrypted using it. To drop the {}, you must first drop all signatures and encryptions that use it."),
    15405: (16, "Cannot use the special principal '{}'."),
    15407: (16, "'{}' is not a valid Windows NT name. Give the complete name: <domain\\username>."),
    15433: (16, "Supplied parameter sid is in use."),
    15434: (16, "Could not drop login '{}' as the user is currently logged in."),
    15465: (16, "The private key password is invalid."),
    15466: (16, "An error occurred during decryption."),
    15474: (16, "Invalid private key. The private key does not match the public key of the {}."),
    15578: (16, "There is already a master key in the database. Please drop it before performing this statement."),
    15580: (16, "Cannot drop {} because {} '{}' is encrypted by it."),
    15581: (16, "Please create a master key in the database or open the master key in the session before performing this operation."),
    15591: (16, "The current security context cannot be reverted. Please switch to the original database where 'Execute As' was called and try it again."),
    15593: (16, "An error occurred while decrypting {} '{}' that was encrypted by the old master key. The error was ignored because the FORCE option was specified."),
    15594: (16, "The password is already provided for the database master key."),
    15599: (10, "Permission to {} the {} is granted to the login of the current user ({})."),
    18456: (14, "Login failed for user '{}'."),
    18470: (14, "Login failed for user '{}'. Reason: The account is disabled."),
    # mirroring transport (docs: database-engine-events-and-errors-28000-to-29999)
    28055: (16, "The certificate '{}' is not valid for endpoint authentication. The certificate must have a private key encrypted with the database master key and current UTC date has to be between the certificate start date and the certificate expiration date."),
    # lab-only
    50000: (16, "{}"),
    59003: (16, "LISTENER_PORT {} is outside 1024-32767, the range CREATE ENDPOINT documents as valid (mirrorkit lab)."),
    59002: (16, "The lab could not run this statement: {}"),
    59001: (16, "{} is not supported by the lab (mirrorkit). See docs/lab-fidelity.md for the supported subset."),
}
NOT_SUPPORTED = 59001


class SqlError(Exception):
    """A SQL Server error raised while compiling or executing a statement.

    abort_batch: compile errors and a few runtime errors stop the whole batch;
    most statement errors let the batch go on, as SQL Server does.
    """

    def __init__(self, number: int, *args: object, state: int = 1, severity: int | None = None,
                 abort_batch: bool = False, text: str | None = None):
        sev, template = MESSAGES.get(number, (16, "{}"))
        self.number = number
        self.severity = sev if severity is None else severity
        self.state = state
        self.text = text if text is not None else template.format(*args)
        self.abort_batch = abort_batch
        self.line = 0  # filled in by the executor
        super().__init__(f"Msg {number}: {self.text}")

    def to_message(self, line: int, procedure: str = "") -> Message:
        return Message(self.number, self.severity, self.state, self.text,
                       line=self.line or line, procedure=procedure)


def info(number: int, *args: object, state: int = 1, line: int = 1) -> Message:
    sev, template = MESSAGES[number]
    return Message(number, sev, state, template.format(*args), line=line)


def syntax_error(near: str, *, keyword: bool = False) -> SqlError:
    return SqlError(156 if keyword else 102, near, abort_batch=True)


def not_supported(what: str) -> SqlError:
    return SqlError(NOT_SUPPORTED, what, abort_batch=True)
